import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, defaultConfig, loadConfig, parseConfig } from '../../src/config.js';

describe('config', () => {
  it('embeds a default: qemu:///system, 127.0.0.1:8080, no peers', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ libvirtUri: 'qemu:///system', listenHost: '127.0.0.1', listenPort: 8080, peers: [] });
    expect(c.source === 'embedded default' || c.source === '/etc/kvm-ferry/config.yaml').toBe(true);
  });

  it('reads the YAML file named by KVM_FERRY_CONFIG', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kf-cfg-'));
    const path = join(dir, 'c.yaml');
    writeFileSync(path, '# a comment\nnodeName: alpha\nlistenPort: 9000\nimageDir: /srv/images\n');
    const c = loadConfig({ KVM_FERRY_CONFIG: path });
    expect(c).toMatchObject({ nodeName: 'alpha', listenPort: 9000, imageDir: '/srv/images', source: path });
  });

  it.each([
    [{ listenPort: 70000 }, 'listenPort'],
    [{ listenPort: '8080' }, 'listenPort'],
    [{ imageDir: 'relative/dir' }, 'imageDir'],
    [{ nodeName: 'bad name' }, 'nodeName'],
    [{ libvirtUri: 'not a uri' }, 'libvirtUri'],
    [{ virtType: 'xen' }, 'virtType'],
    [{ vmNetwork: 'bridge:br0;rm' }, 'vmNetwork'],
    [{ imgDir: '/x' }, 'imgDir'],
    [{ dataTransport: 'ssl' }, 'dataTransport'],
    [{ migrationTlsDir: 'pki' }, 'migrationTlsDir'],
    [{ allowedHosts: 'kvm.example' }, 'allowedHosts'],
    [{ allowedHosts: ['kvm.example:8080'] }, 'allowedHosts[0]'],
    [{ allowedHosts: ['ok.example', 'evil"; x'] }, 'allowedHosts[1]'],
    [{ peers: [{ name: 'b' }] }, 'peers[0].sshHost'],
    [{ peers: [{ name: 'b', sshHost: 'h', sshKeyFile: '/k', hostKey: 'k', dataAddress: '10.0.0.2', extra: 1 }] }, 'peers[0].extra'],
  ])('names the bad key in %j', (raw, key) => {
    try {
      parseConfig(raw);
      throw new Error('expected ConfigError');
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).key).toBe(key);
      expect((e as Error).message).toContain(key);
    }
  });

  it('refuses a peer with this node\'s name', () => {
    const peer = { name: defaultConfig().nodeName, sshHost: 'h', sshKeyFile: '/k', hostKey: 'k', dataAddress: '10.0.0.2' };
    expect(() => parseConfig({ peers: [peer] })).toThrow(/appears twice/);
  });

  it('reads the maintenance block and refuses bad values naming the key', () => {
    expect(parseConfig({ maintenance: { maxParallelPerLink: 2, reservedMemoryMiB: 1024 } }).maintenance).toEqual({ ...defaultConfig().maintenance, maxParallelPerLink: 2, reservedMemoryMiB: 1024 });
    expect(() => parseConfig({ maintenance: { maxParallelPerLink: 0 } })).toThrow('config: maintenance.maxParallelPerLink: must be a whole number from 1 to 8');
    expect(() => parseConfig({ maintenance: { reservedMemoryMiB: -1 } })).toThrow(/maintenance\.reservedMemoryMiB/);
    expect(() => parseConfig({ maintenance: { reserve: 1 } })).toThrow(/maintenance\.reserve: unknown key/);
    expect(() => parseConfig({ maintenance: 3 })).toThrow('config: maintenance: must be a mapping');
  });

  it('libvirtTimeoutSec: 10 s by default, whole seconds 1–600, a bad value refused naming the key', () => {
    expect(defaultConfig().libvirtTimeoutSec).toBe(10);
    expect(parseConfig({ libvirtTimeoutSec: 3 }).libvirtTimeoutSec).toBe(3);
    for (const bad of [0, -1, 601, 2.5, 'ten']) {
      expect(() => parseConfig({ libvirtTimeoutSec: bad })).toThrow(/libvirtTimeoutSec/);
    }
  });

  it('inventoryRefreshSec: 5 s by default, whole seconds 1–300, a bad value refused naming the key', () => {
    expect(defaultConfig().inventoryRefreshSec).toBe(5);
    expect(parseConfig({ inventoryRefreshSec: 2 }).inventoryRefreshSec).toBe(2);
    for (const bad of [0, -1, 301, 1.5, 'five']) {
      expect(() => parseConfig({ inventoryRefreshSec: bad })).toThrow(/inventoryRefreshSec/);
    }
  });

  it('accepts the documented example file, whose values are the defaults', () => {
    const c = loadConfig({ KVM_FERRY_CONFIG: join(__dirname, '../../config/kvm-ferry.example.yaml') });
    const { source: _s, nodeName: _n, ...rest } = c;
    const { source: _d, nodeName: _dn, ...defaults } = defaultConfig();
    expect(rest).toEqual(defaults);
  });

  it('reports unreadable and invalid files clearly', () => {
    expect(() => loadConfig({ KVM_FERRY_CONFIG: '/nonexistent/kf.yaml' })).toThrow(/cannot read/);
    const dir = mkdtempSync(join(tmpdir(), 'kf-cfg-'));
    writeFileSync(join(dir, 'bad.yaml'), 'nodeName: [unclosed');
    expect(() => loadConfig({ KVM_FERRY_CONFIG: join(dir, 'bad.yaml') })).toThrow(/not valid YAML/);
  });
});
