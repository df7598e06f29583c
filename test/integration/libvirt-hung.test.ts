import { readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LibvirtConnection } from '../../src/adapters/libvirt/connection.js';
import { CallLimit } from '../../src/adapters/libvirt/call-limit.js';
import { domainList } from '../../src/adapters/libvirt/domain.js';
import { startHungLibvirtd, type HungLibvirtd } from '../helpers/hung-libvirtd.js';

/** The real binding against a libvirtd that never answers (a SIGSTOPped one, to a client). */
let hung: HungLibvirtd;

beforeAll(async () => {
  hung = await startHungLibvirtd();
});

// Closing the sockets gives every blocked libvirt call its EOF, so its thread returns.
afterAll(() => hung.close());

describe('a libvirtd that does not answer', () => {
  it('fails with "libvirt does not answer" within the timeout, and file I/O stays fast while calls are stuck', async () => {
    const uri = hung.uri;
    const limit = new CallLimit(2);
    const conns = Array.from({ length: 4 }, () => new LibvirtConnection(uri, 800, limit));
    const t0 = Date.now();
    const results = await Promise.allSettled(conns.map((c) => domainList(c)));
    const took = Date.now() - t0;
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect(String((r as PromiseRejectedResult).reason.message)).toMatch(/^libvirt does not answer: opening the connection got no reply in 1 s\.$/);
    }
    // Two waited for a slot, two timed out in one; nobody waited much beyond the timeout.
    expect(took).toBeLessThan(5_000);
    expect(limit.busy).toBe(2);
    // Both stuck calls still hold pool threads; file reads (the same libuv pool) are not starved.
    const f = join(hung.dir, 'probe');
    writeFileSync(f, 'x'.repeat(1000));
    const r0 = Date.now();
    for (let i = 0; i < 20; i++) expect((await readFile(f, 'utf8')).length).toBe(1000);
    expect(Date.now() - r0).toBeLessThan(2_000);
    expect(readFileSync(f, 'utf8').length).toBe(1000);
  });
});
