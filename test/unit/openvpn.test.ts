import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { inSubnet, parseVpnConfig } from '../../src/config-vpn.js';
import { buildOpenvpnStartArgs, isOurInstance } from '../../src/adapters/openvpn/openvpn-args.js';
import { parseClientConfig, parseIpAddr, parseIpLinkStats, parseStatusFile } from '../../src/adapters/openvpn/openvpn-status.js';

/** Output captured in the lab (KFLAB_INSTANCE=2 scripts/lab.sh up 2 --nat lab-b). */
const fixture = (name: string) => readFileSync(join(__dirname, '..', 'fixtures', 'openvpn', name), 'utf8');

const vpn = {
  configFile: '/etc/kvm-ferry/vpn/openvpn.conf',
  pidFile: '/run/kvm-ferry-vpn.pid',
  statusFile: '/run/kvm-ferry-vpn.status',
  logFile: '/var/log/kvm-ferry-vpn.log',
  interface: 'kfvpn0',
  subnet: '10.177.0.0/24',
};

describe('OpenVPN status parsers', () => {
  it('reads connected clients from a server status file (version 2)', () => {
    const s = parseStatusFile(fixture('server-status-v2.txt'));
    expect(s).toEqual({
      role: 'server',
      updatedAt: '2026-11-25T06:11:50.000Z',
      clients: [{ name: 'lab-b', realAddress: '10.78.0.254:58024', tunnelAddress: '10.178.0.12', bytesIn: 7856, bytesOut: 7951, since: '2026-11-25T06:11:40.000Z' }],
    });
  });

  it('reads a client status file as a client', () => {
    const s = parseStatusFile(fixture('client-status.txt'));
    expect(s).toMatchObject({ role: 'client', tunBytesRead: 4937, tunBytesWritten: 4985 });
  });

  it('returns null for anything else', () => {
    expect(parseStatusFile('')).toBeNull();
    expect(parseStatusFile('hello\nworld')).toBeNull();
  });

  it('takes the tunnel address and byte counters from ip -j -s addr', () => {
    const text = fixture('ip-addr-stats.json');
    expect(parseIpAddr(text)).toBe('10.178.0.12/24');
    expect(parseIpLinkStats(text)).toEqual({ rxBytes: 5129, txBytes: 5081 });
    expect(parseIpAddr('[]')).toBeNull();
    expect(parseIpAddr('Device "kfvpn0" does not exist.')).toBeNull();
    expect(parseIpLinkStats('[]')).toBeNull();
  });

  it('finds the server a client config dials and the name it insists on', () => {
    expect(parseClientConfig('client\nremote 10.78.0.11 1194\nverify-x509-name lab-a name\n')).toEqual({ remote: '10.78.0.11:1194', serverName: 'lab-a' });
    expect(parseClientConfig('server 10.0.0.0 255.255.255.0\n')).toEqual({ remote: null, serverName: null });
  });
});

describe('OpenVPN command line and process identity', () => {
  it('starts exactly the configured file as a daemon with pid and status files', () => {
    expect(buildOpenvpnStartArgs(vpn)).toEqual([
      '--config', vpn.configFile, '--daemon', 'kvm-ferry-vpn', '--writepid', vpn.pidFile,
      '--status', vpn.statusFile, '1', '--status-version', '2', '--log-append', vpn.logFile,
    ]);
    expect(buildOpenvpnStartArgs({ ...vpn, logFile: null })).not.toContain('--log-append');
  });

  it('recognises only an openvpn process running our config file', () => {
    const ours = ['openvpn', ...buildOpenvpnStartArgs(vpn)].join('\0') + '\0';
    expect(isOurInstance(ours, vpn)).toBe(true);
    expect(isOurInstance(['/usr/sbin/openvpn', '--config', vpn.configFile].join('\0'), vpn)).toBe(true);
    expect(isOurInstance(['openvpn', '--config', '/etc/openvpn/other.conf'].join('\0'), vpn)).toBe(false);
    expect(isOurInstance(['sleep', '--config', vpn.configFile].join('\0'), vpn)).toBe(false);
    expect(isOurInstance(['bash', '-c', `openvpn --config ${vpn.configFile}`].join('\0'), vpn)).toBe(false);
    expect(isOurInstance('', vpn)).toBe(false);
  });
});

describe('vpn config section', () => {
  const fail = (key: string, message: string): never => {
    throw new Error(`${key}: ${message}`);
  };

  it('is optional and validated', () => {
    expect(parseConfig({}).vpn).toBeNull();
    expect(parseConfig({ vpn }).vpn).toEqual(vpn);
    expect(() => parseConfig({ vpn: { ...vpn, configFile: 'relative.conf' } })).toThrow(/vpn\.configFile: must be an absolute path/);
    expect(() => parseConfig({ vpn: { ...vpn, interface: 'tun0; rm -rf /' } })).toThrow(/vpn\.interface/);
    expect(() => parseConfig({ vpn: { ...vpn, subnet: '10.177.0.0' } })).toThrow(/vpn\.subnet/);
    expect(() => parseConfig({ vpn: { ...vpn, unit: 'openvpn@x' } })).toThrow(/vpn\.unit: unknown key/);
    expect(() => parseVpnConfig({ pidFile: '/run/x' }, fail)).toThrow(/configFile: is required/);
  });

  it('decides which addresses sit inside the tunnel subnet', () => {
    expect(inSubnet('10.177.0.12', '10.177.0.0/24')).toBe(true);
    expect(inSubnet('10.177.1.12', '10.177.0.0/24')).toBe(false);
    expect(inSubnet('node2.lan', '10.177.0.0/24')).toBe(false);
    expect(inSubnet('10.1.2.3', '0.0.0.0/0')).toBe(true);
  });
});
