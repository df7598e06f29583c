// Live progress of a job from its Server-Sent Events; without this file the page refreshes itself.
'use strict';
(() => {
  const box = document.querySelector('.progress[data-events]');
  if (!box || box.dataset.state !== 'running' || typeof EventSource === 'undefined') return;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  const bytes = (n) => {
    let v = n, i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
  };
  const set = (sel, text) => { const el = box.querySelector(sel); if (el) el.textContent = text; };
  const show = (job) => {
    const p = job.progress || {};
    const pct = job.state === 'ok' ? 100 : Math.max(0, Math.min(100, Number(p.percent) || 0));
    box.querySelector('progress').value = pct;
    box.dataset.state = job.state;
    set('.pct', `${pct} %`);
    set('.step', p.step || '');
    set('.bytes', p.dataTotalBytes ? `${bytes(p.dataProcessedBytes)} of ${bytes(p.dataTotalBytes)}` : '');
    set('.speed', p.speedBps ? `${bytes(p.speedBps)}/s` : '');
    set('.phase', p.phase ? (p.phase === 'memory' ? `memory pass ${p.memoryPass}` : p.phase) : '');
    set('.dirty', p.dirtyRateBps ? `guest writes ${bytes(p.dirtyRateBps)}/s` : '');
    set('.remaining', p.remainingBytes != null ? `${bytes(p.remainingBytes)} left` : '');
    set('.throttle', p.throttlePercent ? `VM slowed ${p.throttlePercent} %` : '');
    set('.downtime', p.downtimeLimitMs ? `pause allowed ${p.downtimeLimitMs} ms` : '');
    set('.policy-note', p.policyNote || '');
    set('.eta', p.etaSec != null && job.state === 'running' ? `about ${p.etaSec} s left` : '');
  };
  const es = new EventSource(box.dataset.events);
  es.addEventListener('progress', (ev) => show(JSON.parse(ev.data)));
  es.addEventListener('end', (ev) => {
    show(JSON.parse(ev.data));
    es.close();
    // The final page shows the outcome sentence and the details.
    setTimeout(() => window.location.reload(), 800);
  });
})();
