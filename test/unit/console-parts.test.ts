import { describe, expect, it } from 'vitest';
import { isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { closeReason, isLoopbackOnly, vncConnectHost } from '../../src/domain/console.js';
import { ConsoleTickets } from '../../src/services/console/console-tickets.js';
import { RequestTrust } from '../../src/web/proxy-trust.js';
import { wsOriginAllowed } from '../../src/web/ws-origin.js';
import { parseDomainXml } from '../../src/adapters/libvirt/domain-xml.js';

const req = (headers: Record<string, string>, remoteAddress = '203.0.113.9') => ({ headers, socket: { remoteAddress } }) as unknown as IncomingMessage;

describe('ConsoleTickets', () => {
  it('redeems a ticket once, for its own node and VM, within its lifetime', () => {
    const clock = { ms: 1_000_000 };
    const t = new ConsoleTickets(() => clock.ms);
    const a = t.issue('alpha', 'web-01');
    expect(a.expiresAt).toBe(1_030_000);
    expect(t.redeem(a.ticket, 'alpha', 'web-01')).toEqual({ ok: true });
    expect(t.redeem(a.ticket, 'alpha', 'web-01')).toEqual({ ok: false, reason: 'used' });
    const b = t.issue('alpha', 'web-01');
    clock.ms += 30_001;
    expect(t.redeem(b.ticket, 'alpha', 'web-01')).toEqual({ ok: false, reason: 'expired' });
    const c = t.issue('alpha', 'web-01');
    expect(t.redeem(c.ticket, 'beta', 'web-01')).toEqual({ ok: false, reason: 'wrong-vm' });
    expect(t.redeem(c.ticket, 'alpha', 'web-01')).toEqual({ ok: false, reason: 'used' });
    expect(t.redeem('nonsense', 'alpha', 'web-01')).toEqual({ ok: false, reason: 'unknown' });
  });

  it('keeps memory bounded when tickets are requested in a flood', () => {
    const t = new ConsoleTickets();
    for (let i = 0; i < 5_000; i++) t.issue('alpha', 'web-01');
    expect(t.size).toBeLessThanOrEqual(2_000);
  });
});

describe('console helpers', () => {
  it('cuts a close reason to 123 bytes of UTF-8 without breaking a character', () => {
    expect(closeReason('short')).toBe('short');
    const long = `VM ${'ж'.repeat(100)} closed.`;
    const cut = closeReason(long);
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(123);
    expect(cut.endsWith('ж…')).toBe(true);
  });

  it('connects to loopback for wildcard, name or missing listen addresses', () => {
    const ip = (s: string) => isIP(s) !== 0;
    expect(vncConnectHost(null, ip)).toBe('127.0.0.1');
    expect(vncConnectHost('0.0.0.0', ip)).toBe('127.0.0.1');
    expect(vncConnectHost('localhost', ip)).toBe('127.0.0.1');
    expect(vncConnectHost('10.77.0.2', ip)).toBe('10.77.0.2');
    expect(isLoopbackOnly('127.0.0.1')).toBe(true);
    expect(isLoopbackOnly('0.0.0.0')).toBe(false);
  });

  it('allows a websocket only from this origin, or from a client that sends none', () => {
    const trust = new RequestTrust('s'.repeat(43), [], '127.0.0.1', () => false);
    expect(wsOriginAllowed(req({ host: 'node1:8080' }), trust)).toBe(true);
    expect(wsOriginAllowed(req({ host: 'node1:8080', origin: 'http://node1:8080' }), trust)).toBe(true);
    expect(wsOriginAllowed(req({ host: 'node1:8080', origin: 'https://evil.example' }), trust)).toBe(false);
    expect(wsOriginAllowed(req({ host: 'node1:8080', origin: 'not a url' }), trust)).toBe(false);
    // Behind nginx: X-Forwarded-Host counts only with the secret nginx adds.
    const proxied = { host: '127.0.0.1:8080', origin: 'https://ferry.example', 'x-forwarded-host': 'ferry.example' };
    expect(wsOriginAllowed(req({ ...proxied, 'x-kvm-ferry-proxy': 's'.repeat(43) }, '127.0.0.1'), trust)).toBe(true);
    expect(wsOriginAllowed(req(proxied, '127.0.0.1'), trust)).toBe(false);
  });

  it('reads the domain id, present only while a VM is active', () => {
    expect(parseDomainXml(`<domain type='qemu' id='7'><name>a</name></domain>`).id).toBe(7);
    expect(parseDomainXml(`<domain type='qemu'><name>a</name></domain>`).id).toBeNull();
  });
});
