/**
 * Imported first by lab tests that bring up their own lab instance: unless
 * KFLAB_INSTANCE names one, they use instance 2 (kflab2-*, 10.78.0.0/24), so they
 * never touch the default lab someone may be using (see scripts/lab/common.sh).
 */
const before = process.env.KFLAB_INSTANCE;
if (!before) process.env.KFLAB_INSTANCE = '2';

/** Call after the lab is down: a worker process reused for another test file must not inherit the instance. */
export function restoreLabInstanceEnv(): void {
  if (before === undefined) delete process.env.KFLAB_INSTANCE;
  else process.env.KFLAB_INSTANCE = before;
}
