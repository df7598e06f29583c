/** The convergence policies a migration can run under (README: "Busy VMs"). */
export const CONVERGENCE_POLICIES = ['safe', 'fast-finish', 'strict'] as const;
export type ConvergencePolicy = (typeof CONVERGENCE_POLICIES)[number];

/** What the policy step function and the prediction need from the config. */
export interface PolicySettings {
  policy: ConvergencePolicy;
  maxDowntimeMs: number;
  /** Seconds after which a still-copying migration is aborted. */
  budgetSec: number;
  stallIterations: number;
  throttleInitialPercent: number;
  throttleIncrementPercent: number;
}

/** QEMU's own default downtime limit: what plain `virsh migrate` runs with. */
export const QEMU_DEFAULT_DOWNTIME_MS = 300;
/** oVirt's "minimal downtime" steps; cut at the configured maximum (and the maximum added). */
export const DOWNTIME_STEPS_MS = [100, 150, 200, 300, 400, 500] as const;

export function downtimeSteps(maxMs: number): number[] {
  const steps: number[] = DOWNTIME_STEPS_MS.filter((s) => s < maxMs);
  steps.push(maxMs);
  return steps;
}

/** The allowed downtime a policy starts with: strict keeps QEMU's default (or less) and never raises it. */
export function initialDowntimeMs(s: Pick<PolicySettings, 'policy' | 'maxDowntimeMs'>): number {
  return s.policy === 'strict' ? Math.min(QEMU_DEFAULT_DOWNTIME_MS, s.maxDowntimeMs) : downtimeSteps(s.maxDowntimeMs)[0]!;
}

/** The completion budget: seconds per GiB of RAM plus copied disk, never below the floor. */
export function budgetSeconds(ramBytes: number, diskBytes: number, secPerGiB: number, minSec: number): number {
  return Math.max(minSec, Math.ceil(((ramBytes + diskBytes) / 1024 ** 3) * secPerGiB));
}
