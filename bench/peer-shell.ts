/**
 * What the forced command costs per peer command: kvm-ferry-peer-shell (Node start,
 * config read, check, spawn) running `hostname` and `df` vs the same argv run directly.
 * A pre-flight sends about a dozen commands, so the page waits for the median × 12 more.
 * Needs a build (dist/). Last line: key=value.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SHELL = join(ROOT, 'dist/src/peer-shell/main.js');
const RUNS = Number(process.env.RUNS ?? 20);
const dir = mkdtempSync(join(tmpdir(), 'kf-peer-shell-bench-'));
const config = join(dir, 'config.yaml');
writeFileSync(config, `dataDir: ${dir}\nimageDir: ${dir}/images\nisoDir: ${dir}/iso\n`);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
function time(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(file, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} failed: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

const cases: [string, string, string[]][] = [
  ['hostname', 'hostname', ['/usr/bin/hostname', '']],
  ['df', `'df' '-B1' '--output=avail' '--' '${dir}'`, ['/usr/bin/df', '-B1', '--output=avail', '--', dir]],
];
const out: string[] = [];
for (const [name, original, argv] of cases) {
  const direct: number[] = [];
  const fenced: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    direct.push(time(argv[0]!, argv.slice(1).filter(Boolean)));
    fenced.push(time(process.execPath, [SHELL, '--config', config], { ...process.env, SSH_ORIGINAL_COMMAND: original }));
  }
  const d = median(direct);
  const f = median(fenced);
  console.log(`${name}: direct ${d.toFixed(1)} ms, through the peer shell ${f.toFixed(1)} ms (median of ${RUNS})`);
  out.push(`${name}_direct_ms=${d.toFixed(1)} ${name}_peer_shell_ms=${f.toFixed(1)}`);
}
const refused = median(Array.from({ length: RUNS }, () => {
  const t = process.hrtime.bigint();
  spawnSync(process.execPath, [SHELL, '--config', config], { env: { ...process.env, SSH_ORIGINAL_COMMAND: 'id' }, stdio: 'ignore' });
  return Number(process.hrtime.bigint() - t) / 1e6;
}));
console.log(`refusal of "id": ${refused.toFixed(1)} ms`);
console.log(`${out.join(' ')} refused_ms=${refused.toFixed(1)} runs=${RUNS}`);
