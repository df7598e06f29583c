import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const SCRIPT = join(__dirname, '..', '..', 'scripts', 'vpn-certs.sh');
const dir = mkdtempSync(join(tmpdir(), 'kfvp-certs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const block = (conf: string, tag: string) => new RegExp(`<${tag}>\\n([\\s\\S]*?)\\n</${tag}>`).exec(conf)?.[1] ?? '';
const openssl = (...args: string[]) => execFileSync('openssl', args, { encoding: 'utf8' });

describe('scripts/vpn-certs.sh', () => {
  const out = join(dir, 'out');
  execFileSync(SCRIPT, ['--out', out, '--server', 'node1=203.0.113.10', '--net', '10.177.0.0', '--install-dir', '/etc/kvm-ferry/vpn', 'node2', 'node3'], { stdio: 'pipe' });
  const conf = (n: string) => readFileSync(join(out, n, 'openvpn.conf'), 'utf8');

  it('gives the server .1 and each client a fixed address through client-config-dir', () => {
    expect(readFileSync(join(out, 'addresses'), 'utf8')).toBe('node1 10.177.0.1\nnode2 10.177.0.12\nnode3 10.177.0.13\n');
    expect(readFileSync(join(out, 'node1', 'ccd', 'node3'), 'utf8')).toBe('ifconfig-push 10.177.0.13 255.255.255.0\n');
    expect(conf('node1')).toMatch(/^server 10\.177\.0\.0 255\.255\.255\.0$/m);
    expect(conf('node1')).toMatch(/^client-config-dir \/etc\/kvm-ferry\/vpn\/ccd$/m);
    expect(conf('node1')).toMatch(/^ccd-exclusive$/m);
    expect(conf('node1')).toMatch(/^client-to-client$/m);
    expect(conf('node2')).toMatch(/^remote 203\.0\.113\.10 1194$/m);
  });

  it('writes modern TLS settings into every config', () => {
    for (const n of ['node1', 'node2', 'node3']) {
      const c = conf(n);
      for (const line of ['dev-type tun', 'proto udp', 'topology subnet', 'tls-version-min 1.3', 'data-ciphers AES-256-GCM:CHACHA20-POLY1305']) expect(c).toContain(`\n${line}\n`);
      expect(block(c, 'tls-crypt')).toMatch(/BEGIN OpenVPN Static key V1/);
      expect(statSync(join(out, n, 'openvpn.conf')).mode & 0o077).toBe(0);
    }
    expect(conf('node1')).toMatch(/^remote-cert-tls client$/m);
    expect(conf('node2')).toMatch(/^remote-cert-tls server$/m);
    expect(conf('node2')).toMatch(/^verify-x509-name node1 name$/m);
  });

  it('issues certificates that chain to the CA, named after the node, server or client only', () => {
    for (const [n, eku] of [['node1', 'TLS Web Server Authentication'], ['node2', 'TLS Web Client Authentication']] as const) {
      const crt = join(dir, `${n}.crt`);
      writeFileSync(crt, `${block(conf(n), 'cert')}\n`);
      expect(openssl('verify', '-CAfile', join(out, 'ca', 'ca.crt'), crt)).toContain(': OK');
      const text = openssl('x509', '-in', crt, '-noout', '-subject', '-ext', 'extendedKeyUsage');
      expect(text).toMatch(new RegExp(`subject=CN = ${n}`));
      expect(text).toContain(eku);
    }
  });

  it('refuses bad names and addresses before writing anything', () => {
    const r = spawnSync(SCRIPT, ['--out', join(dir, 'bad'), '--server', 'node1=203.0.113.10', 'node;2'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('vpn-certs: ERROR: node name "node;2" is not valid\n');
    expect(spawnSync(SCRIPT, ['--out', join(dir, 'bad'), '--server', 'node1=example.com', 'node2']).status).toBe(1);
    expect(() => statSync(join(dir, 'bad'))).toThrow();
  });
});
