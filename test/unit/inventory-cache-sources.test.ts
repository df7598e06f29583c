import { describe, expect, it } from 'vitest';
import { InventoryCache, type NodeSource } from '../../src/services/inventory/inventory-cache.js';

function source(name: string, reads: string[]): NodeSource {
  return { name, local: name === 'here', read: async () => { reads.push(name); return []; } };
}

describe('InventoryCache.setSources (peers re-read after a join or remove)', () => {
  it('reads a joined node at once, drops a removed one, keeps the others', async () => {
    const reads: string[] = [];
    const cache = new InventoryCache([source('here', reads), source('old', reads)], { refreshMs: 60_000, timeoutMs: 1_000 });
    cache.start();
    await cache.ready(1_000);
    expect(cache.views().map((v) => v.name)).toEqual(['here', 'old']);
    reads.length = 0;
    cache.setSources([source('here', reads), source('new', reads)]);
    expect(cache.views().map((v) => v.name)).toEqual(['here', 'new']);
    expect(cache.view('old')).toBeNull();
    await cache.refresh('new');
    expect(cache.view('new')?.state).not.toBe('never');
    expect(reads.filter((r) => r === 'here')).toEqual([]);
    cache.stop();
  });
});
