/**
 * Latency of the VM page and the VM list API on a 100-VM libvirt test-driver world
 * with real sparse qcow2 files: the real app on an ephemeral port, sequential requests.
 *
 *   npm run bench:page
 *
 * Last line, for scripts: page_p50_ms=… page_p95_ms=… api_p50_ms=… api_p95_ms=…
 */
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { performance } from 'node:perf_hooks';
import { makeFixture, type FixtureDomain } from '../test/helpers/fixture.js';
import { startTestApp } from '../test/helpers/test-app.js';

const VMS = 100;
const WARMUP = 20;
const RUNS = 200;
const TARGET_P50_MS = 50;

const run = promisify(execFile);

async function world() {
  // Disk paths go into the fixture XML, so the files live in a first fixture's image dir
  // and the app is pointed at it.
  const images = makeFixture();
  const domains: FixtureDomain[] = [];
  const names = Array.from({ length: VMS }, (_, i) => `vm-${String(i + 1).padStart(3, '0')}`);
  for (let i = 0; i < names.length; i += 10) {
    await Promise.all(names.slice(i, i + 10).map((n) => run('qemu-img', ['create', '-q', '-f', 'qcow2', join(images.imageDir, `${n}.qcow2`), `${8 + (i % 4) * 8}G`])));
  }
  names.forEach((name, i) =>
    domains.push({
      name,
      state: i % 3 === 2 ? 'shut-off' : 'running',
      vcpus: 1 + (i % 4),
      memoryMiB: 256 * (1 + (i % 8)),
      vncPort: 5900 + i,
      disks: [{ path: join(images.imageDir, `${name}.qcow2`) }],
    }),
  );
  const f = makeFixture(domains, { cpus: 32, memoryMiB: 262_144 });
  return { ...f, imageDir: images.imageDir, scratch: [images.dir, f.dir] };
}

async function timeGet(url: string, expect: (status: number, body: string) => void): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(url);
  const body = await res.text();
  const ms = performance.now() - t0;
  expect(res.status, body);
  return ms;
}

function pct(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

async function measure(name: string, url: string, check: (status: number, body: string) => void) {
  for (let i = 0; i < WARMUP; i++) await timeGet(url, check);
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) samples.push(await timeGet(url, check));
  samples.sort((a, b) => a - b);
  const r = { p50: pct(samples, 50), p95: pct(samples, 95), min: samples[0]!, max: samples[samples.length - 1]! };
  console.log(`${name.padEnd(24)} n=${RUNS} p50=${r.p50.toFixed(2)} ms p95=${r.p95.toFixed(2)} ms min=${r.min.toFixed(2)} ms max=${r.max.toFixed(2)} ms`);
  return r;
}

async function main() {
  const f = await world();
  const app = await startTestApp(f);
  try {
    console.log(`kvm-ferry page bench: ${VMS} VMs (test driver, qcow2 disks), NODE_ENV=${process.env.NODE_ENV ?? '(unset)'}, ${WARMUP} warm-up + ${RUNS} sequential requests each`);
    const page = await measure('GET /', `${app.url}/`, (status, body) => {
      if (status !== 200) throw new Error(`GET / answered ${status}`);
      const rows = body.match(/<tr class="vm"/g)?.length ?? 0;
      if (rows !== VMS) throw new Error(`GET / showed ${rows} VM rows, expected ${VMS}`);
    });
    const api = await measure('GET /api/nodes/alpha/vms', `${app.url}/api/nodes/alpha/vms`, (status, body) => {
      if (status !== 200) throw new Error(`GET /api/nodes/alpha/vms answered ${status}`);
      const n = (JSON.parse(body) as unknown[]).length;
      if (n !== VMS) throw new Error(`the API listed ${n} VMs, expected ${VMS}`);
    });
    if (page.p50 > TARGET_P50_MS || api.p50 > TARGET_P50_MS) console.log(`target missed: p50 must be <= ${TARGET_P50_MS} ms`);
    console.log(`page_p50_ms=${page.p50.toFixed(2)} page_p95_ms=${page.p95.toFixed(2)} api_p50_ms=${api.p50.toFixed(2)} api_p95_ms=${api.p95.toFixed(2)}`);
  } finally {
    await app.close();
    for (const d of f.scratch) rmSync(d, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
