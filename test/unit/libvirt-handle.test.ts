import type { Hypervisor } from '@unraid/libvirt';
import { describe, expect, it } from 'vitest';
import { LibvirtConnection } from '../../src/adapters/libvirt/connection.js';
import { CallLimit } from '../../src/adapters/libvirt/call-limit.js';

/**
 * The binding's connectClose frees the connection under any call still running on it (a
 * SIGSTOPped libvirtd holds them all); when libvirtd resumed, those threads used freed memory
 * and the manager died without a JavaScript error. A scripted binding (the real one cannot be
 * made to hold a call and then answer without a lab; e2e/inventory does that with a real
 * SIGSTOPped libvirtd) records what the connection does to it.
 */
class ScriptedBinding {
  readonly log: string[] = [];
  private held: (() => void)[] = [];
  hang = false;
  closes = 0;

  connectOpen(): Promise<void> {
    this.log.push('open');
    return this.maybeHold(undefined);
  }
  connectListAllDomains(): Promise<unknown[]> {
    this.log.push(this.closes ? 'list after close' : 'list');
    return this.maybeHold([]);
  }
  connectGetHostname(): Promise<string> {
    this.log.push('hostname');
    return this.maybeHold('node');
  }
  connectClose(): Promise<void> {
    this.closes++;
    this.log.push(`close with ${this.held.length} held`);
    return Promise.resolve();
  }
  /** libvirtd resumes: every held call returns. */
  resume(): void {
    this.hang = false;
    const h = this.held;
    this.held = [];
    for (const r of h) r();
  }
  private maybeHold<T>(v: T): Promise<T> {
    if (!this.hang) return Promise.resolve(v);
    return new Promise<T>((r) => this.held.push(() => r(v)));
  }
}

const settle = () => new Promise((r) => setTimeout(r, 20));

describe('a libvirt connection whose calls hang and then return', () => {
  it('closes the connection once, only after its last held call returned, and starts no call on it after', async () => {
    const b = new ScriptedBinding();
    const conn = new LibvirtConnection('test:///x', 50, new CallLimit(3), () => b as unknown as Hypervisor);
    const list = () => conn.read((h) => h.connectListAllDomains());
    await list();
    b.hang = true;
    // Three calls hang and time out (each one drops the connection), a fourth waits for a slot.
    const results = await Promise.allSettled([list(), list(), list(), list()]);
    for (const r of results) expect(r.status).toBe('rejected');
    expect(String((results[0] as PromiseRejectedResult).reason.message)).toMatch(/^libvirt does not answer/);
    expect(b.closes).toBe(0);
    b.resume();
    await settle();
    expect(b.closes).toBe(1);
    expect(b.log.filter((l) => l.startsWith('close'))).toEqual(['close with 0 held']);
    expect(b.log).not.toContain('list after close');
    // The next call opens a fresh connection and works.
    await expect(list()).resolves.toEqual([]);
  });

  it('closes a connection whose open timed out only once the open returned', async () => {
    const b = new ScriptedBinding();
    b.hang = true;
    const conn = new LibvirtConnection('test:///x', 50, new CallLimit(2), () => b as unknown as Hypervisor);
    await expect(conn.read((h) => h.connectListAllDomains())).rejects.toThrow(/opening the connection got no reply/);
    expect(b.closes).toBe(0);
    b.resume();
    await settle();
    expect(b.log).toEqual(['open', 'close with 0 held']);
  });

  it('close() of an idle connection closes it once', async () => {
    const b = new ScriptedBinding();
    const conn = new LibvirtConnection('test:///x', 50, new CallLimit(2), () => b as unknown as Hypervisor);
    await conn.read((h) => h.connectGetHostname());
    await conn.close();
    await conn.close();
    expect(b.closes).toBe(1);
  });
});
