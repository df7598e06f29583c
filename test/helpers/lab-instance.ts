/**
 * Imported first by lab tests that bring up their own lab instance: unless
 * KFLAB_INSTANCE names one, they use instance 2 (kflab2-*, 10.78.0.0/24), so they
 * never touch the default lab someone may be using (see scripts/lab/common.sh).
 */
if (!process.env.KFLAB_INSTANCE) process.env.KFLAB_INSTANCE = '2';
export {};
