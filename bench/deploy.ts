/**
 * What nginx basic auth costs per request: nginx checks the bcrypt hash on every
 * request (no session), in its worker, so the hash cost is paid by every page load,
 * stylesheet, refresh and API call. Times GET /api/nodes/<node>/vms (10 VMs, test
 * driver) directly and through the shipped nginx site with bcrypt costs 5, 8, 10, 12.
 *
 *   node --import tsx bench/deploy.ts
 *
 * Last line: direct_p50_ms=… nginx_c5_p50_ms=… … c12_over_c5_p50=…
 */
import { performance } from 'node:perf_hooks';
import { makeFixture } from '../test/helpers/fixture.js';
import { startTestApp } from '../test/helpers/test-app.js';
import { startNginx } from '../test/helpers/nginx.js';

const RUNS = 40;
const WARMUP = 5;
const COSTS = [5, 8, 10, 12];

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function series(url: string, headers: Record<string, string>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < WARMUP + RUNS; i++) {
    const t0 = performance.now();
    const r = await fetch(url, { headers });
    await r.text();
    if (r.status !== 200) throw new Error(`${url} answered ${r.status}`);
    if (i >= WARMUP) out.push(performance.now() - t0);
  }
  return out;
}

async function main() {
  const app = await startTestApp(makeFixture(Array.from({ length: 10 }, (_, i) => ({ name: `vm-${i}` }))));
  const path = '/api/nodes/alpha/vms';
  const results: Record<string, number> = {};
  const direct = await series(app.url + path, {});
  results.direct_p50_ms = pct(direct, 50);
  console.log(`direct            p50 ${pct(direct, 50).toFixed(1)} ms  p95 ${pct(direct, 95).toFixed(1)} ms`);
  for (const cost of COSTS) {
    const nginx = await startNginx({ dataDir: app.config.dataDir, upstreamPort: Number(new URL(app.url).port), users: { admin: 'bench password' }, bcryptCost: cost });
    try {
      const xs = await series(nginx.url + path, { authorization: 'Basic ' + Buffer.from('admin:bench password').toString('base64') });
      results[`nginx_c${cost}_p50_ms`] = pct(xs, 50);
      console.log(`nginx bcrypt ${String(cost).padStart(2)}   p50 ${pct(xs, 50).toFixed(1)} ms  p95 ${pct(xs, 95).toFixed(1)} ms`);
    } finally {
      await nginx.stop();
    }
  }
  await app.close();
  const ratio = (results.nginx_c12_p50_ms! / results.nginx_c5_p50_ms!).toFixed(1);
  console.log(Object.entries(results).map(([k, v]) => `${k}=${v.toFixed(1)}`).join(' ') + ` c12_over_c5_p50=${ratio}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
