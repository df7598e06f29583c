import { describe, expect, it } from 'vitest';
import type { IncomingMessage } from 'node:http';
import { hostName, RequestTrust } from '../../src/web/proxy-trust.js';

const SECRET = 'k'.repeat(43);
const req = (headers: Record<string, string>) => ({ headers, socket: { remoteAddress: '127.0.0.1' } }) as unknown as IncomingMessage;

describe('the Host a request names', () => {
  it('is the name without its port, lower-cased; IPv6 stays in brackets', () => {
    expect(hostName('Node1.Example:8080')).toBe('node1.example');
    expect(hostName('10.77.0.2')).toBe('10.77.0.2');
    expect(hostName('[::1]:8080')).toBe('[::1]');
    for (const bad of [undefined, '', 'a:b:c', 'a.example:99999999', '[::1', 'a b']) expect(hostName(bad), String(bad)).toBeNull();
  });
});

describe('request trust', () => {
  const trust = new RequestTrust(SECRET, ['kvm.example'], '10.77.0.2', (n) => n === 'beta');

  it('allows loopback names, the listen address and allowedHosts; anything with the secret', () => {
    for (const host of ['127.0.0.1:8080', 'localhost', '[::1]:80', '10.77.0.2:8080', 'kvm.example']) expect(trust.refusedHost(req({ host })), host).toBeNull();
    for (const host of ['evil.example', 'kvm.example.evil.example', '10.77.0.3:8080']) expect(trust.refusedHost(req({ host })), host).toBe(host);
    expect(trust.refusedHost(req({}))).toBe('');
    expect(trust.refusedHost(req({ host: 'any.example', 'x-kvm-ferry-proxy': SECRET }))).toBeNull();
  });

  it('listening on every address adds no name of its own', () => {
    const wide = new RequestTrust(SECRET, [], '0.0.0.0', () => false);
    expect(wide.refusedHost(req({ host: '0.0.0.0:8080' }))).toBe('0.0.0.0:8080');
    expect(wide.refusedHost(req({ host: '127.0.0.1:8080' }))).toBeNull();
  });

  it("takes the user from nginx only, and labels a configured peer's requests", () => {
    expect(trust.user(req({ 'x-remote-user': 'alice', 'x-kvm-ferry-proxy': SECRET }))).toBe('alice');
    expect(trust.user(req({ 'x-remote-user': 'alice' }))).toBeNull();
    expect(trust.user(req({ 'x-remote-user': 'alice', 'x-kvm-ferry-proxy': `${SECRET}x` }))).toBeNull();
    expect(trust.user(req({ 'x-remote-user': 'alice bob', 'x-kvm-ferry-proxy': SECRET }))).toBeNull();
    expect(trust.user(req({ 'x-kvm-ferry-via': 'beta', 'x-remote-user': 'olga' }))).toBe('peer:beta/olga');
    expect(trust.user(req({ 'x-kvm-ferry-via': 'beta', 'x-remote-user': 'peer:gamma' }))).toBe('peer:beta');
    expect(trust.user(req({ 'x-kvm-ferry-via': 'gamma', 'x-remote-user': 'olga' }))).toBeNull();
    expect(trust.user(req({ 'x-kvm-ferry-via': '../beta' }))).toBeNull();
  });

  it('believes X-Forwarded-Host from nginx only', () => {
    expect(trust.forwardedHost(req({ 'x-forwarded-host': 'a.example', 'x-kvm-ferry-proxy': SECRET }))).toBe('a.example');
    expect(trust.forwardedHost(req({ 'x-forwarded-host': 'a.example' }))).toBeUndefined();
  });
});
