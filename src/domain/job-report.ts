import type { Job } from './job.js';
import { readTrail, type JobTrail } from './job-trail.js';
import { formatBytes } from './numbers.js';

/**
 * The one percent a job page shows, in its headline and its bar alike: a finished job is
 * 100, a running one what its last progress report said (clamped). public/job-progress.js
 * applies the same rule to each live event.
 */
export function jobPercent(job: Pick<Job, 'state' | 'progress'>): number {
  if (job.state === 'ok') return 100;
  const p = Number(job.progress?.percent);
  return Number.isFinite(p) ? Math.max(0, Math.min(100, p)) : 0;
}

/** The trail: the final one in the result once the job ended, else the live one in its progress. */
export function jobTrail(job: Pick<Job, 'progress' | 'result'>): JobTrail | null {
  return readTrail(job.result?.trail) ?? readTrail(job.progress?.trail);
}

export interface CheckLine {
  id: string;
  ok: boolean;
  message: string;
}

/** The pre-flight checks a migration job recorded in its params (the pre-flight page's list). */
export function jobChecks(job: Pick<Job, 'params'>): CheckLine[] {
  const c = job.params?.checks;
  if (!Array.isArray(c)) return [];
  return c.filter((x): x is CheckLine => !!x && typeof x.id === 'string' && typeof x.ok === 'boolean' && typeof x.message === 'string');
}

const obj = (v: unknown): Record<string, unknown> | null => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);


const POLICY_WORDS: Record<string, string> = { safe: 'Safe', 'fast-finish': 'Fast finish', strict: 'Strict' };

/**
 * A finished migration's outcome as sentences: where the VM is, policy, passes, pause,
 * bytes sent. Only figures the job recorded are stated; nothing is guessed.
 */
export function migrationResultWords(job: Pick<Job, 'kind' | 'state' | 'vm' | 'node' | 'params' | 'result'>): string[] {
  if (job.kind !== 'migrate' || job.state === 'running') return [];
  const r = obj(job.result) ?? {};
  const conv = obj(r.convergence);
  const to = typeof r.to === 'string' ? r.to : typeof job.params?.to === 'string' ? (job.params.to as string) : null;
  const from = typeof r.from === 'string' ? r.from : job.node;
  const out: string[] = [];
  const vm = job.vm ?? 'The VM';
  if (job.state === 'ok' && to) out.push(`${vm} now runs on node ${to}${r.mode === 'offline' ? ' (moved while shut off)' : ''}.`);
  else if (job.state === 'failed') out.push(`${vm} stays on node ${from}; the move did not complete.`);
  if (conv) {
    const policy = typeof conv.policy === 'string' ? POLICY_WORDS[conv.policy] ?? conv.policy : null;
    const cap = num(conv.bandwidthMiBps);
    if (policy) out.push(`Policy: ${policy}${cap ? `, capped at ${cap} MiB/s` : ', no bandwidth cap'}.`);
    const it = num(conv.iterations);
    if (it !== null) out.push(`${it} memory pass${it === 1 ? '' : 'es'}${num(conv.maxThrottlePercent) ? `; the VM was slowed by up to ${conv.maxThrottlePercent} %` : ''}${conv.postcopy === true ? '; finished in post-copy' : ''}.`);
  }
  const down = num(r.downtimeMs);
  if (down !== null) out.push(`The VM was paused for ${down} ms at the switch-over.`);
  const sent = num(r.bytesMoved);
  const dur = num(r.durationMs);
  if (sent !== null) out.push(`${formatBytes(sent)} sent${dur ? ` in ${(dur / 1000).toFixed(1)} s` : ''}.`);
  const removed = Array.isArray(r.sourceRemoved) ? r.sourceRemoved.length : null;
  if (job.state === 'ok' && removed !== null) out.push(removed ? `${removed} moved file${removed === 1 ? '' : 's'} removed from ${from}.` : `The source files on ${from} were kept.`);
  return out;
}
