import { isAbsolute } from 'node:path';

/** The one OpenVPN instance this node's manager watches and controls. */
export interface VpnConfig {
  /** The instance's config (scripts/vpn-certs.sh writes it); only this file is ever started. */
  configFile: string;
  /** openvpn --writepid: how the manager finds (and later stops) the instance. */
  pidFile: string;
  /** openvpn --status (version 2, rewritten every second): connected peers and bytes. */
  statusFile: string;
  /** openvpn --log-append; null leaves logging to the config (syslog by default). */
  logFile: string | null;
  /** The tun device named in the config (dev …). */
  interface: string;
  /** The tunnel subnet, e.g. 10.177.0.0/24: peers addressed inside it are reached only through the tunnel. */
  subnet: string;
}

const KEYS = ['configFile', 'pidFile', 'statusFile', 'logFile', 'interface', 'subnet'];

/** Parses the `vpn:` section; `fail(key, message)` throws the config error. */
export function parseVpnConfig(raw: unknown, fail: (key: string, message: string) => never): VpnConfig | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) fail('vpn', 'must be a mapping (configFile, pidFile, statusFile, logFile, interface, subnet)');
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KEYS.includes(k)) fail(`vpn.${k}`, `unknown key (known keys: ${KEYS.join(', ')})`);
  const path = (k: string, required: boolean): string | null => {
    const v = o[k];
    if (v === undefined || v === null) {
      if (required) fail(`vpn.${k}`, 'is required');
      return null;
    }
    if (typeof v !== 'string' || !isAbsolute(v) || /[\n\0]/.test(v)) fail(`vpn.${k}`, 'must be an absolute path');
    return v;
  };
  const configFile = path('configFile', true)!;
  const pidFile = path('pidFile', true)!;
  const statusFile = path('statusFile', true)!;
  const logFile = path('logFile', false);
  const iface = o.interface ?? 'kfvpn0';
  if (typeof iface !== 'string' || !/^[A-Za-z][A-Za-z0-9_.-]{0,14}$/.test(iface)) fail('vpn.interface', 'must be a network interface name of 1–15 letters, digits, dot, dash or underscore');
  const subnet = o.subnet;
  if (typeof subnet !== 'string' || !parseCidr(subnet)) fail('vpn.subnet', 'must be an IPv4 subnet like 10.177.0.0/24');
  return {
    configFile,
    pidFile,
    statusFile,
    logFile,
    interface: iface as string,
    subnet: subnet as string,
  };
}

/** "10.177.0.0/24" → network and mask as 32-bit numbers; null when not a valid IPv4 CIDR. */
export function parseCidr(cidr: string): { network: number; mask: number } | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  if (!m) return null;
  const octets = m.slice(1, 5).map(Number);
  const bits = Number(m[5]);
  if (octets.some((x) => x > 255) || bits > 32) return null;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return { network: (ipv4ToInt(octets.join('.'))! & mask) >>> 0, mask };
}

export function ipv4ToInt(ip: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) return null;
  const o = m.slice(1, 5).map(Number);
  if (o.some((x) => x > 255)) return null;
  return ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0;
}

export function inSubnet(ip: string, cidr: string): boolean {
  const n = ipv4ToInt(ip);
  const c = parseCidr(cidr);
  return n !== null && c !== null && ((n & c.mask) >>> 0) === c.network;
}
