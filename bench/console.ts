/**
 * The console's own cost: time from asking for a ticket to QEMU's RFB greeting arriving
 * through /console/ws (local path, real paused QEMU as the VNC server, test-driver
 * world), and the manager's memory per open console.
 *
 *   npm run bench:console
 *
 * Last line, for scripts: console_connect_p50_ms=… console_connect_p95_ms=… direct_connect_p50_ms=… proxy_vs_direct_p50=… rss_per_session_kib=…
 */
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { makeFixture } from '../test/helpers/fixture.js';
import { api } from '../test/helpers/test-app.js';
import { openConsoleWs, startConsoleApp } from '../test/helpers/console-app.js';
import { startQemuVnc } from '../test/helpers/qemu-vnc.js';

const WARMUP = 10;
const RUNS = 100;
const SESSIONS = 30;

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

function directGreeting(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    s.once('data', () => (s.destroy(), resolve()));
    s.once('error', reject);
  });
}

async function main() {
  const qemu = await startQemuVnc();
  const app = await startConsoleApp(makeFixture([{ name: 'bench-01', state: 'running', vncPort: qemu.port }]));
  try {
    const once = async () => {
      const t0 = performance.now();
      const t = await api(app, 'POST', '/api/nodes/alpha/vms/bench-01/console');
      const r = await openConsoleWs(app.url, t.json.wsPath, { untilBytes: 12 });
      const ms = performance.now() - t0;
      if (r.received.subarray(0, 3).toString() !== 'RFB') throw new Error(`no RFB greeting: ${r.closeReason}`);
      r.ws.terminate();
      return ms;
    };
    for (let i = 0; i < WARMUP; i++) await once();
    const proxied: number[] = [];
    for (let i = 0; i < RUNS; i++) proxied.push(await once());
    const direct: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      await directGreeting(qemu.port);
      direct.push(performance.now() - t0);
    }

    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    const open = [];
    for (let i = 0; i < SESSIONS; i++) {
      const t = await api(app, 'POST', '/api/nodes/alpha/vms/bench-01/console');
      open.push(await openConsoleWs(app.url, t.json.wsPath, { untilBytes: 12 }));
    }
    global.gc?.();
    const perSessionKiB = Math.round((process.memoryUsage().rss - rss0) / 1024 / SESSIONS);
    for (const o of open) o.ws.terminate();

    const p50 = pct(proxied, 50);
    const d50 = pct(direct, 50);
    console.log(`ticket + websocket + RFB greeting (${RUNS} sequential): p50 ${p50.toFixed(2)} ms, p95 ${pct(proxied, 95).toFixed(2)} ms`);
    console.log(`direct TCP to QEMU's VNC, first byte:            p50 ${d50.toFixed(2)} ms`);
    console.log(`${SESSIONS} open consoles (client and server in this process): ${perSessionKiB} KiB RSS each`);
    console.log(`console_connect_p50_ms=${p50.toFixed(2)} console_connect_p95_ms=${pct(proxied, 95).toFixed(2)} direct_connect_p50_ms=${d50.toFixed(2)} proxy_vs_direct_p50=${(p50 / d50).toFixed(1)} rss_per_session_kib=${perSessionKiB}`);
  } finally {
    await app.close();
    await qemu.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
