// Interactive charts on the VM page (uPlot, served by the app). Without JS the server's SVG stays.
'use strict';
(() => {
  const root = document.getElementById('vm-stats');
  if (!root || typeof window.uPlot !== 'function') return;
  const { node, vm } = root.dataset;
  let range = root.dataset.range || '1h';
  const charts = {};
  let timer = null;

  const fmtMiB = (u, v) => (v == null ? '—' : `${Math.round(v)} MiB`);
  const fmtRate = (u, v) => {
    if (v == null) return '—';
    const units = ['B/s', 'KiB/s', 'MiB/s', 'GiB/s'];
    let x = v;
    let i = 0;
    while (x >= 1024 && i < units.length - 1) { x /= 1024; i++; }
    return `${x >= 10 || i === 0 ? Math.round(x) : x.toFixed(1)} ${units[i]}`;
  };
  const fmtPct = (u, v) => (v == null ? '—' : `${v.toFixed(1)} %`);

  function make(id, label, series, fmt, yRange) {
    const el = document.getElementById(id);
    el.textContent = '';
    const opts = {
      width: Math.max(280, el.clientWidth || 720),
      height: 200,
      scales: { x: { time: true }, y: yRange ? { range: yRange } : {} },
      axes: [{}, { values: (u, vals) => vals.map((v) => fmt(u, v)), size: 70 }],
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: s.width || 1.5, value: fmt, spanGaps: false }))],
    };
    charts[id] = new window.uPlot(opts, [[], ...series.map(() => [])], el);
    el.dataset.interactive = 'true';
  }

  async function load() {
    const res = await fetch(`/api/nodes/${encodeURIComponent(node)}/vms/${encodeURIComponent(vm)}/stats?range=${encodeURIComponent(range)}`, { headers: { accept: 'application/json' } });
    if (!res.ok) return;
    const h = await res.json();
    const p = h.points;
    charts['chart-cpu'].setData([p.t, p.cpu, p.cpuMax]);
    charts['chart-ram'].setData([p.t, p.ram, p.ramMax]);
    if (p.io) {
      charts['chart-disk'].setData([p.t, p.io.diskRdBytes, p.io.diskWrBytes]);
      charts['chart-net'].setData([p.t, p.io.netInBytes, p.io.netOutBytes]);
    }
    const count = root.querySelector('.point-count');
    if (count) count.textContent = String(p.t.length);
    root.dataset.loadedRange = range;
  }

  make('chart-cpu', 'CPU', [{ label: 'CPU avg', color: '#245aa8' }, { label: 'CPU max', color: '#9db6de', width: 1 }], fmtPct, [0, 100]);
  make('chart-ram', 'RAM', [{ label: 'RAM avg', color: '#1d7a46' }, { label: 'RAM max', color: '#9fd3b3', width: 1 }], fmtMiB, null);

  make('chart-disk', 'Disk', [{ label: 'read', color: '#8a5a00' }, { label: 'written', color: '#d9a640' }], fmtRate, null);
  make('chart-net', 'Network', [{ label: 'in (received)', color: '#6a3d9a' }, { label: 'out (sent)', color: '#b89ad6' }], fmtRate, null);

  function select(r) {
    range = r;
    for (const a of root.querySelectorAll('.ranges a')) a.classList.toggle('btn-go', a.dataset.range === r);
    history.replaceState(null, '', `?range=${encodeURIComponent(r)}`);
    clearInterval(timer);
    // The last hour moves every few seconds; longer ranges change once a minute at most.
    timer = setInterval(load, r === '1h' ? 5000 : 60000);
    load();
  }

  root.querySelector('.ranges').addEventListener('click', (ev) => {
    const a = ev.target.closest('a[data-range]');
    if (!a) return;
    ev.preventDefault();
    select(a.dataset.range);
  });
  window.addEventListener('resize', () => {
    for (const [id, u] of Object.entries(charts)) u.setSize({ width: Math.max(280, document.getElementById(id).clientWidth), height: 200 });
  });
  select(range);
})();
