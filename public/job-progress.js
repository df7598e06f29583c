// Live job report from its Server-Sent Events: one percent for headline and bar, the step
// timeline and the throughput chart. Without this file the page refreshes itself and the
// server-rendered timeline and checks stand.
'use strict';
(() => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  const bytes = (n) => {
    let v = n, i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
  };
  const LABELS = { preflight: 'Pre-flight', prepare: 'Preparing', disks: 'Disks', copy: 'Copy', define: 'Definition', verify: 'Verify', cleanup: 'Clean-up' };
  const clock = (ms) => (ms == null ? '' : new Date(ms).toISOString().slice(11, 19));
  const took = (ms) => (ms == null ? '' : ms < 1000 ? `${ms} ms` : ms < 60000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`);
  // The same rule as src/domain/job-report.ts jobPercent: the one number headline and bar show.
  const percentOf = (job) => {
    if (job.state === 'ok') return 100;
    const p = Number((job.progress || {}).percent);
    return Number.isFinite(p) ? Math.max(0, Math.min(100, p)) : 0;
  };

  let chart = null;
  const chartBox = document.getElementById('job-chart');
  function drawChart(samples) {
    if (!chartBox || typeof window.uPlot !== 'function' || !Array.isArray(samples)) return;
    const data = [samples.map((s) => s.tSec), samples.map((s) => s.bps), samples.map((s) => s.remainingBytes)];
    if (chart) { chart.setData(data); return; }
    const fmt = (suffix) => (u, v) => (v == null ? '—' : `${bytes(v)}${suffix}`);
    chart = new window.uPlot({
      width: Math.max(280, chartBox.clientWidth || 640),
      height: 180,
      scales: { x: { time: false }, bps: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] }, left: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [{ label: 's since start' }, { scale: 'bps', values: (u, vals) => vals.map((v) => fmt('/s')(u, v)), size: 80 }, { scale: 'left', side: 1, values: (u, vals) => vals.map((v) => fmt('')(u, v)), size: 80, grid: { show: false } }],
      series: [{ label: 's' }, { label: 'throughput', scale: 'bps', stroke: '#2a6fdb', value: fmt('/s') }, { label: 'bytes left', scale: 'left', stroke: '#c0392b', value: fmt('') }],
    }, data, chartBox);
    chartBox.dataset.interactive = 'true';
  }
  const samplesEl = document.getElementById('job-samples');
  const firstDraw = () => {
    try { drawChart(JSON.parse(samplesEl ? samplesEl.textContent : '[]')); } catch { /* the page still reads without the chart */ }
  };
  if (document.readyState === 'complete') firstDraw(); else window.addEventListener('load', firstDraw);

  function drawTimeline(trail) {
    const box = document.getElementById('timeline-box');
    const body = document.querySelector('#timeline tbody');
    if (!box || !body || !trail || !Array.isArray(trail.steps)) return;
    body.textContent = '';
    for (const s of trail.steps) {
      const tr = document.createElement('tr');
      tr.className = `step step-${s.endMs == null ? 'running' : 'done'}`;
      tr.dataset.step = s.step;
      for (const text of [LABELS[s.step] || s.step, clock(s.startMs), s.endMs == null ? 'running' : clock(s.endMs), s.endMs == null ? '' : took(s.endMs - s.startMs)]) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    box.hidden = trail.steps.length === 0;
  }

  const box = document.querySelector('.progress[data-events]');
  if (!box || box.dataset.state !== 'running' || typeof EventSource === 'undefined') return;
  const set = (sel, text) => { const el = box.querySelector(sel); if (el) el.textContent = text; };
  const show = (job) => {
    const p = job.progress || {};
    const pct = percentOf(job);
    box.querySelector('progress').value = pct;
    box.querySelector('progress').textContent = `${pct} %`;
    box.dataset.state = job.state;
    set('.pct', `${pct} %`);
    set('.step-label', p.step && job.state === 'running' ? LABELS[p.step] || p.step : '');
    set('.bytes', p.dataTotalBytes ? `${bytes(p.dataProcessedBytes)} of ${bytes(p.dataTotalBytes)}` : '');
    set('.speed', p.speedBps ? `${bytes(p.speedBps)}/s` : '');
    set('.phase', p.phase ? (p.phase === 'memory' ? `memory pass ${p.memoryPass}` : p.phase) : '');
    set('.dirty', p.dirtyRateBps ? `guest writes ${bytes(p.dirtyRateBps)}/s` : '');
    set('.remaining', p.remainingBytes != null ? `${bytes(p.remainingBytes)} left` : '');
    set('.throttle', p.throttlePercent ? `VM slowed ${p.throttlePercent} %` : '');
    set('.downtime', p.downtimeLimitMs ? `pause allowed ${p.downtimeLimitMs} ms` : '');
    set('.policy-note', p.policyNote || '');
    set('.eta', p.etaSec != null && job.state === 'running' ? `about ${p.etaSec} s left` : '');
    // The sentence under the bar comes from the same event, so its figure is the bar's.
    const msg = document.querySelector('#job .message');
    if (msg && job.message) msg.textContent = job.message;
    const trail = (job.result && job.result.trail) || p.trail;
    drawTimeline(trail);
    if (trail) drawChart(trail.samples);
  };
  const es = new EventSource(box.dataset.events);
  es.addEventListener('progress', (ev) => show(JSON.parse(ev.data)));
  es.addEventListener('end', (ev) => {
    show(JSON.parse(ev.data));
    es.close();
    // The final page shows the outcome in words and the details.
    setTimeout(() => window.location.reload(), 800);
  });
})();
