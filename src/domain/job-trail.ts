/**
 * What a job leaves behind for its report: when each step started and ended, and a bounded
 * series of progress samples (throughput and bytes left) over the job's life. Pure: the job
 * runner feeds it the progress the job reports; the job page reads it back.
 */

export interface StepSpan {
  step: string;
  startMs: number;
  /** null while the step runs. */
  endMs: number | null;
}

export interface TrailSample {
  /** Seconds since the job started. */
  tSec: number;
  /** Bytes/s carried, as libvirt (or the file copy) reports it; null when not reported. */
  bps: number | null;
  /** Bytes still to send; null when not reported. */
  remainingBytes: number | null;
}

export interface JobTrail {
  steps: StepSpan[];
  samples: TrailSample[];
}

/** Enough points for a small chart; a long job keeps its whole life at a coarser grain. */
export const MAX_TRAIL_SAMPLES = 120;

/** A marker the migration reports once it is finished; it closes the last step and opens none. */
const FINAL_STEPS = new Set(['done']);

export const STEP_LABELS: Record<string, string> = {
  preflight: 'Pre-flight',
  prepare: 'Preparing',
  disks: 'Disks',
  copy: 'Copy',
  define: 'Definition',
  verify: 'Verify',
  cleanup: 'Clean-up',
};

export function emptyTrail(): JobTrail {
  return { steps: [], samples: [] };
}

/** Reads a trail stored in a job's JSON, refusing anything that is not one (old rows have none). */
export function readTrail(v: unknown): JobTrail | null {
  if (!v || typeof v !== 'object') return null;
  const t = v as Partial<JobTrail>;
  if (!Array.isArray(t.steps) || !Array.isArray(t.samples)) return null;
  const steps = t.steps.filter((s): s is StepSpan => !!s && typeof s.step === 'string' && typeof s.startMs === 'number' && (s.endMs === null || typeof s.endMs === 'number'));
  const samples = t.samples.filter((s): s is TrailSample => !!s && typeof s.tSec === 'number');
  return { steps, samples };
}

/** The step log after the job reported `step` at `nowMs`: a new step closes the open one. */
export function enterStep(trail: JobTrail, step: string, nowMs: number): JobTrail {
  const open = trail.steps[trail.steps.length - 1];
  if (open && open.endMs === null && open.step === step) return trail;
  const steps = trail.steps.map((s) => (s.endMs === null ? { ...s, endMs: nowMs } : s));
  if (!FINAL_STEPS.has(step)) steps.push({ step, startMs: nowMs, endMs: null });
  return { ...trail, steps };
}

/** Closes the open step (the job ended). */
export function closeTrail(trail: JobTrail, nowMs: number): JobTrail {
  return { ...trail, steps: trail.steps.map((s) => (s.endMs === null ? { ...s, endMs: nowMs } : s)) };
}

/**
 * Adds a sample; past `max`, every other sample is dropped (the first and the newest always stay), so the
 * series covers the whole job with at most `max` points whatever its length.
 */
export function addSample(trail: JobTrail, s: TrailSample, max = MAX_TRAIL_SAMPLES): JobTrail {
  let samples = [...trail.samples, s];
  if (samples.length > max) samples = samples.filter((_, i) => i % 2 === 0 || i === samples.length - 1);
  return { ...trail, samples };
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** The sample in a progress report, if it carries data figures (migration copy phases do). */
export function sampleFrom(progress: Record<string, unknown>, tSec: number): TrailSample | null {
  const bps = num(progress.throughputBps) ?? num(progress.speedBps);
  const remainingBytes = num(progress.remainingBytes) ?? num(progress.dataRemainingBytes);
  if (bps === null && remainingBytes === null) return null;
  return { tSec: Math.round(tSec * 10) / 10, bps, remainingBytes };
}

/** One progress report folded into the trail. */
export function trailAfter(trail: JobTrail, progress: Record<string, unknown>, nowMs: number, jobStartMs: number): JobTrail {
  let t = typeof progress.step === 'string' ? enterStep(trail, progress.step, nowMs) : trail;
  const s = sampleFrom(progress, (nowMs - jobStartMs) / 1000);
  if (s) t = addSample(t, s);
  return t;
}

/** One row of the page's timeline. */
export interface TimelineRow {
  step: string;
  label: string;
  startMs: number;
  endMs: number | null;
  durationMs: number | null;
}

/** The timeline the page shows; repeated entries of one step (e.g. disks, then more disks) stay separate rows. */
export function timeline(trail: JobTrail | null): TimelineRow[] {
  if (!trail) return [];
  return trail.steps.map((s) => ({ step: s.step, label: STEP_LABELS[s.step] ?? s.step, startMs: s.startMs, endMs: s.endMs, durationMs: s.endMs === null ? null : s.endMs - s.startMs }));
}
