// Progressive enhancement only: the page works without this file.
'use strict';
document.addEventListener('submit', (ev) => {
  const form = ev.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) ev.preventDefault();
});

// The VM page follows /events: the cache's changes update the VM list in place (state at
// once, then the rows and activity redrawn from a fresh render, which asks no node anything).
// Without JavaScript the page keeps its meta refresh.
(() => {
  const nodes = () => Array.from(document.querySelectorAll('section.node[data-node]'));
  if (nodes().length === 0 || typeof EventSource === 'undefined' || typeof DOMParser === 'undefined') return;
  let skewMs = 0;
  const ageText = (at) => {
    if (!at) return 'never reached since this manager started';
    const sec = Math.max(0, Math.round((Date.now() - skewMs - at) / 1000));
    if (sec < 120) return `as of ${sec} s ago`;
    const min = Math.round(sec / 60);
    return min < 120 ? `as of ${min} min ago` : `as of ${Math.round(min / 60)} h ago`;
  };
  const section = (name) => nodes().find((s) => s.dataset.node === name);
  const tickAges = () => {
    for (const s of nodes()) {
      const el = s.querySelector('.node-age');
      if (el) el.textContent = ageText(Number(s.dataset.asOf) || 0);
    }
  };
  setInterval(tickAges, 1000);
  const stateWords = { 'no-state': 'Unknown', running: 'Running', blocked: 'Running (blocked)', paused: 'Paused', 'shutting-down': 'Shutting down', 'shut-off': 'Shut off', crashed: 'Crashed', suspended: 'Suspended (guest)' };
  const rowOf = (node, uuid) => {
    const s = section(node);
    if (!s) return null;
    return Array.from(s.querySelectorAll('tr.vm')).find((tr) => tr.querySelector('.uuid')?.textContent === uuid) || null;
  };
  const apply = (c) => {
    if (c.kind === 'vm-state') {
      const tr = rowOf(c.node, c.vm.uuid);
      if (!tr) return;
      tr.dataset.state = c.vm.state;
      const badge = tr.querySelector('td[data-label="State"] .badge');
      if (badge) {
        badge.className = `badge state-${c.vm.state}`;
        badge.textContent = stateWords[c.vm.state] || c.vm.state;
      }
    } else if (c.kind === 'vm-removed') {
      rowOf(c.node, c.vm.uuid)?.remove();
    } else if (c.kind === 'node') {
      const s = section(c.node);
      if (!s) return;
      s.dataset.status = c.state === 'active' ? 'up' : c.state === 'never' ? 'never' : 'down';
      if (c.at) s.dataset.asOf = String(c.at);
      const badge = s.querySelector('.node-state');
      if (badge) {
        badge.className = `badge node-state ${c.state === 'active' ? 'state-running' : 'state-crashed'}`;
        badge.textContent = c.state === 'active' ? 'active' : 'inactive';
      }
      const reason = s.querySelector('.node-reason');
      if (reason) {
        reason.textContent = c.reason || '';
        reason.hidden = !c.reason;
      }
    }
  };
  // A menu the user has open is never redrawn under them.
  const busy = (el) => !!el.querySelector('details[open]') || el.contains(document.activeElement);
  let redraw = null;
  const redrawSoon = () => {
    if (redraw) return;
    redraw = setTimeout(async () => {
      redraw = null;
      try {
        const res = await fetch(window.location.href, { headers: { accept: 'text/html' }, credentials: 'same-origin' });
        if (!res.ok) return;
        const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
        for (const fresh of doc.querySelectorAll('section.node[data-node]')) {
          const old = section(fresh.dataset.node);
          if (old && !busy(old)) old.replaceWith(document.importNode(fresh, true));
        }
        for (const id of ['activity', 'job']) {
          const fresh = doc.getElementById(id);
          const old = document.getElementById(id);
          if (fresh && old && !busy(old)) old.replaceWith(document.importNode(fresh, true));
        }
        tickAges();
        watchJob();
      } catch {
        /* the next event tries again */
      }
    }, 300);
  };
  const es = new EventSource('/events');
  es.addEventListener('hello', (ev) => {
    skewMs = Date.now() - JSON.parse(ev.data).now;
  });
  es.addEventListener('ages', (ev) => {
    const d = JSON.parse(ev.data);
    skewMs = Date.now() - d.now;
    for (const [name, at] of Object.entries(d.at)) {
      const s = section(name);
      if (s && at) s.dataset.asOf = String(at);
    }
    tickAges();
  });
  es.addEventListener('inventory', (ev) => {
    const d = JSON.parse(ev.data);
    skewMs = Date.now() - d.now;
    d.changes.forEach(apply);
    tickAges();
    redrawSoon();
  });
  // The job shown at the top: its end may change nothing in the inventory (a failed start).
  let watched = null;
  const watchJob = () => {
    const box = document.getElementById('job');
    if (!box || box.dataset.jobState !== 'running' || watched === box.dataset.jobId) return;
    watched = box.dataset.jobId;
    const node = box.dataset.jobNode;
    const js = new EventSource(`/api/${node ? `nodes/${encodeURIComponent(node)}/` : ''}jobs/${box.dataset.jobId}/events`);
    js.addEventListener('end', () => {
      js.close();
      redrawSoon();
    });
  };
  watchJob();
})();
