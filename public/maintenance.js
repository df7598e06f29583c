// Live evacuation progress from the maintenance status events; without this file the page refreshes itself.
'use strict';
(() => {
  const box = document.querySelector('.maint-progress[data-events]');
  if (!box || typeof EventSource === 'undefined') return;
  const state = box.dataset.state;
  if (state !== 'evacuating' && state !== 'returning') return;
  const es = new EventSource(box.dataset.events);
  es.addEventListener('status', (ev) => {
    const s = JSON.parse(ev.data);
    for (const m of s.moves) {
      const row = [...box.querySelectorAll('tr.maint-move')].find((r) => r.dataset.vm === m.vm);
      if (!row) continue;
      row.dataset.status = m.status;
      row.querySelector('.st').textContent = m.status;
      row.querySelector('progress').value = m.status === 'moved' ? 100 : m.percent;
    }
    const left = document.getElementById('maint-remaining');
    if (left) left.textContent = `about ${s.remainingSec} s left`;
    if (s.state !== state) {
      es.close();
      setTimeout(() => window.location.reload(), 500);
    }
  });
})();
