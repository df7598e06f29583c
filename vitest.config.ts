import { defineConfig } from 'vitest/config';

// Test workers run with the pool size the manager and the stats daemon give themselves
// (src/threadpool.ts): libvirt calls are bounded by it (src/adapters/libvirt/call-limit.ts).
// Set here, in the parent, so every forked worker inherits it before its pool starts.
process.env.UV_THREADPOOL_SIZE ??= '16';

export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { test: { name: 'integration', include: ['test/integration/**/*.test.ts'], testTimeout: 30_000 } },
      {
        // Real libvirtd + QEMU guests share one host: scripts/test.sh runs this project with --no-file-parallelism.
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 240_000,
          hookTimeout: 240_000,
        },
      },
      {
        // Debian's /usr/bin/chromium driven by playwright-core: one browser at a time.
        test: {
          name: 'browser',
          include: ['test/browser/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
