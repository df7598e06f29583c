import { describe, expect, it } from 'vitest';
import { BackgroundValue } from '../../src/services/inventory/background-value.js';

describe('BackgroundValue', () => {
  it('a refresh asked for while a read runs answers with a read that began after it', async () => {
    let state = 'active';
    const releases: (() => void)[] = [];
    let reads = 0;
    const v = new BackgroundValue(async () => {
      reads++;
      const seen = state; // what the read saw when it began
      await new Promise<void>((r) => releases.push(r));
      return seen;
    }, 60_000);
    const first = v.refresh();
    state = 'inactive'; // the change: the read under way began before it
    const second = v.refresh();
    expect(v.refresh()).toBe(second); // a third ask shares the queued read
    releases.shift()!();
    await first;
    await new Promise((r) => setImmediate(r));
    releases.shift()!();
    await second;
    expect(reads).toBe(2);
    expect(await v.get()).toBe('inactive');
  });

  it('keeps the last error for get() and recovers on the next read', async () => {
    let fail = true;
    const v = new BackgroundValue(async () => {
      if (fail) throw new Error('ip failed');
      return 1;
    }, 60_000);
    await expect(v.get()).rejects.toThrow('ip failed');
    fail = false;
    await v.refresh();
    expect(await v.get()).toBe(1);
  });
});
