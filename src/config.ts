import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isAbsolute } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { isValidNodeName } from './domain/names.js';
import { parseVpnConfig, type VpnConfig } from './config-vpn.js';
import { defaultJoinConfig, parseJoinConfig, type JoinConfig } from './config-join.js';
import { defaultConvergenceConfig, parseConvergenceConfig, type ConvergenceConfig } from './config-convergence.js';

export interface PeerConfig {
  name: string;
  sshHost: string;
  sshPort: number;
  sshUser: string;
  sshKeyFile: string;
  /** Pinned SSH host key, "ssh-ed25519 AAAA…" as in known_hosts. */
  hostKey: string;
  /** Address the destination QEMU listens on for memory and disk data. */
  dataAddress: string;
  /** The peer's kvm-ferry URL, for links from this node's page. */
  url?: string;
  /**
   * Where the peer's kvm-ferry listens, as seen on the peer itself: this node talks
   * to it through an SSH tunnel, so it can stay on the peer's loopback.
   */
  managerHost: string;
  managerPort: number;
}

export type VirtType = 'auto' | 'kvm' | 'qemu';

export type StatsSource = 'auto' | 'libvirt' | 'domstats' | 'virt-top';

/** The stats daemon's settings; see config/kvm-ferry.example.yaml (stats:). */
export interface StatsConfig {
  /** Seconds between samples; a divisor of 60 so the cron schedule ticks evenly. */
  intervalSec: number;
  source: StatsSource;
  rawRetentionHours: number;
  minuteRetentionDays: number;
  hourRetentionDays: number;
}

/** Maintenance mode (evacuation plan and run); see config/kvm-ferry.example.yaml (maintenance:). */
export interface MaintenanceConfig {
  /** Migrations at a time on one link (source → destination) during an evacuation or homecoming. */
  maxParallelPerLink: number;
  /** RAM this node holds back from what it offers to VMs moved here by another node's plan. */
  reservedMemoryMiB: number;
  /** At most this much RAM offered to other nodes' plans (0: no cap) — a limit, stable against the host's own swings. */
  offeredMemoryMiB: number;
  /** A plan leaves at least this much RAM free on a destination after the VMs it places there. */
  memoryMarginMiB: number;
  /** … and at least this much disk free in its image directory. */
  diskMarginMiB: number;
  /** Link speed assumed for the predicted time until a migration to that node has been measured. */
  assumedLinkMBps: number;
}

export interface Config {
  nodeName: string;
  libvirtUri: string;
  listenHost: string;
  listenPort: number;
  /**
   * Host names (and IP literals) a browser may use to reach the manager directly, besides
   * loopback; requests through nginx carry its secret and nginx already checked the name.
   */
  allowedHosts: string[];
  dataDir: string;
  imageDir: string;
  isoDir: string;
  virtType: VirtType;
  /** "auto" (libvirt network "default" when active, else none), "none", "network:NAME" or "bridge:NAME". */
  vmNetwork: string;
  /** Serial console of new VMs is also logged here (pty + log file); null disables it. */
  serialLogDir: string | null;
  shutdownTimeoutSec: number;
  /** After a verified migration the source disks are deleted unless this is true. */
  keepSourceDisks: boolean;
  virtInstallTimeoutSec: number;
  /** A migration that moves no data for this long is aborted (link down, peer frozen). */
  migrationStallTimeoutSec: number;
  /**
   * How live migration data (memory, NBD disk streams) travels to a peer's dataAddress:
   * "tls" (QEMU's TLS, certificates from the cluster CA in migrationTlsDir) or "plain".
   */
  dataTransport: 'tls' | 'plain';
  /** libvirt's migration certificate directory (qemu.conf migrate_tls_x509_cert_dir), the same path on every node. */
  migrationTlsDir: string;
  /** A libvirt binding call without an answer for this long fails with "libvirt does not answer". */
  libvirtTimeoutSec: number;
  /** How often the inventory cache re-reads every node (this one and each peer) in the background. */
  inventoryRefreshSec: number;
  peers: PeerConfig[];
  stats: StatsConfig;
  maintenance: MaintenanceConfig;
  /** This node's OpenVPN instance (see config-vpn.ts); null when the node uses no tunnel. */
  vpn: VpnConfig | null;
  /** How live migrations of busy VMs are helped to finish (see config-convergence.ts). */
  convergence: ConvergenceConfig;
  /** invite/join/remove: this node's SSH side (see config-join.ts). */
  join: JoinConfig;
  /** Where the config came from, for the log line at start-up. */
  source: string;
}

export const DEFAULT_CONFIG_PATH = '/etc/kvm-ferry/config.yaml';

export class ConfigError extends Error {
  constructor(readonly key: string, message: string) {
    super(`config: ${key}: ${message}`);
    this.name = 'ConfigError';
  }
}

export function defaultConfig(): Config {
  return {
    nodeName: sanitizeHostname(hostname()),
    libvirtUri: 'qemu:///system',
    listenHost: '127.0.0.1',
    listenPort: 8080,
    allowedHosts: [],
    dataDir: '/var/lib/kvm-ferry',
    imageDir: '/var/lib/libvirt/images',
    isoDir: '/var/lib/kvm-ferry/iso',
    virtType: 'auto',
    vmNetwork: 'auto',
    serialLogDir: '/var/log/libvirt/qemu',
    shutdownTimeoutSec: 120,
    keepSourceDisks: false,
    virtInstallTimeoutSec: 600,
    migrationStallTimeoutSec: 30,
    dataTransport: 'tls',
    migrationTlsDir: '/etc/pki/libvirt-migrate',
    libvirtTimeoutSec: 10,
    inventoryRefreshSec: 5,
    peers: [],
    stats: { intervalSec: 5, source: 'auto', rawRetentionHours: 24, minuteRetentionDays: 30, hourRetentionDays: 365 },
    maintenance: { maxParallelPerLink: 1, reservedMemoryMiB: 0, offeredMemoryMiB: 0, memoryMarginMiB: 256, diskMarginMiB: 512, assumedLinkMBps: 100 },
    vpn: null,
    convergence: defaultConvergenceConfig(),
    join: defaultJoinConfig('/var/lib/kvm-ferry'),
    source: 'embedded default',
  };
}

function sanitizeHostname(h: string): string {
  const short = h.split('.')[0] ?? 'node';
  const cleaned = short.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63);
  return cleaned || 'node';
}

/** KVM_FERRY_CONFIG names the file; else /etc/kvm-ferry/config.yaml if present; else the embedded default. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const path = env.KVM_FERRY_CONFIG ?? (existsSync(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : undefined);
  if (!path) return defaultConfig();
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError('KVM_FERRY_CONFIG', `cannot read ${path}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new ConfigError('(file)', `${path} is not valid YAML: ${(e as Error).message}`);
  }
  return { ...parseConfig(raw ?? {}), source: path };
}

const KEYS = new Set<string>([
  'nodeName', 'libvirtUri', 'listenHost', 'listenPort', 'allowedHosts', 'dataDir', 'imageDir', 'isoDir',
  'virtType', 'vmNetwork', 'serialLogDir', 'shutdownTimeoutSec', 'keepSourceDisks', 'virtInstallTimeoutSec', 'migrationStallTimeoutSec', 'libvirtTimeoutSec', 'inventoryRefreshSec', 'dataTransport', 'migrationTlsDir', 'peers', 'stats',
  'maintenance', 'vpn', 'convergence', 'join',
]);
const PEER_KEYS = new Set<string>(['name', 'sshHost', 'sshPort', 'sshUser', 'sshKeyFile', 'hostKey', 'dataAddress', 'url', 'managerHost', 'managerPort']);

export function parseConfig(raw: unknown): Config {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError('(file)', 'must be a mapping of keys to values');
  const obj = raw as Record<string, unknown>;
  for (const k of Object.keys(obj)) if (!KEYS.has(k)) throw new ConfigError(k, `unknown key (known keys: ${[...KEYS].join(', ')})`);
  const d = defaultConfig();
  const cfg: Config = {
    nodeName: str(obj, 'nodeName', d.nodeName),
    libvirtUri: str(obj, 'libvirtUri', d.libvirtUri),
    listenHost: str(obj, 'listenHost', d.listenHost),
    listenPort: int(obj, 'listenPort', d.listenPort, 1, 65535),
    allowedHosts: hostNames(obj.allowedHosts),
    dataDir: absPath(obj, 'dataDir', d.dataDir),
    imageDir: absPath(obj, 'imageDir', d.imageDir),
    isoDir: absPath(obj, 'isoDir', d.isoDir),
    virtType: oneOf(obj, 'virtType', d.virtType, ['auto', 'kvm', 'qemu'] as const),
    vmNetwork: str(obj, 'vmNetwork', d.vmNetwork),
    serialLogDir: obj.serialLogDir === 'none' ? null : absPath(obj, 'serialLogDir', d.serialLogDir ?? '/var/log/libvirt/qemu'),
    shutdownTimeoutSec: int(obj, 'shutdownTimeoutSec', d.shutdownTimeoutSec, 1, 3600),
    keepSourceDisks: bool(obj, 'keepSourceDisks', d.keepSourceDisks),
    virtInstallTimeoutSec: int(obj, 'virtInstallTimeoutSec', d.virtInstallTimeoutSec, 10, 7200),
    migrationStallTimeoutSec: int(obj, 'migrationStallTimeoutSec', d.migrationStallTimeoutSec, 5, 3600),
    dataTransport: oneOf(obj, 'dataTransport', d.dataTransport, ['tls', 'plain'] as const),
    migrationTlsDir: absPath(obj, 'migrationTlsDir', d.migrationTlsDir),
    libvirtTimeoutSec: int(obj, 'libvirtTimeoutSec', d.libvirtTimeoutSec, 1, 600),
    inventoryRefreshSec: int(obj, 'inventoryRefreshSec', d.inventoryRefreshSec, 1, 300),
    peers: peers(obj.peers),
    stats: stats(obj.stats, d.stats),
    maintenance: maintenance(obj.maintenance, d.maintenance),
    vpn: parseVpnConfig(obj.vpn, (key, message) => {
      throw new ConfigError(key, message);
    }),
    convergence: parseConvergenceConfig(obj.convergence, (key, message) => {
      throw new ConfigError(key, message);
    }),
    join: defaultJoinConfig('/'),
    source: 'file',
  };
  cfg.join = parseJoinConfig(obj.join, cfg.dataDir, (key, message) => {
    throw new ConfigError(key, message);
  });
  if (!isValidNodeName(cfg.nodeName)) throw new ConfigError('nodeName', 'must be 1–63 letters, digits, dot, dash or underscore');
  if (!/^[a-z][a-z0-9+]*:\/\/[^\s]*$/.test(cfg.libvirtUri)) throw new ConfigError('libvirtUri', `"${cfg.libvirtUri}" is not a libvirt URI like qemu:///system`);
  if (!/^(auto|none|network:[A-Za-z0-9._-]+|bridge:[A-Za-z0-9._-]+)$/.test(cfg.vmNetwork)) {
    throw new ConfigError('vmNetwork', 'must be auto, none, network:NAME or bridge:NAME');
  }
  const names = new Set([cfg.nodeName]);
  for (const p of cfg.peers) {
    if (names.has(p.name)) throw new ConfigError('peers', `node name "${p.name}" appears twice`);
    names.add(p.name);
  }
  return cfg;
}

function hostNames(raw: unknown): string[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new ConfigError('allowedHosts', 'must be a list of host names');
  return raw.map((h, i) => {
    if (typeof h !== 'string' || !/^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$|^\[[0-9A-Fa-f:.]+\]$/.test(h) || h.length > 253) {
      throw new ConfigError(`allowedHosts[${i}]`, `"${String(h)}" is not a host name or IP address (without a port; IPv6 in brackets)`);
    }
    return h.toLowerCase();
  });
}

function str(o: Record<string, unknown>, key: string, fallback: string): string {
  const v = o[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'string' || v.trim() === '') throw new ConfigError(key, 'must be a non-empty string');
  return v.trim();
}

function absPath(o: Record<string, unknown>, key: string, fallback: string): string {
  const v = str(o, key, fallback);
  if (!isAbsolute(v)) throw new ConfigError(key, `must be an absolute path, got "${v}"`);
  return v.replace(/\/+$/, '') || '/';
}

function int(o: Record<string, unknown>, key: string, fallback: number, min: number, max: number): number {
  const v = o[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new ConfigError(key, `must be a whole number from ${min} to ${max}`);
  return v;
}

function bool(o: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const v = o[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new ConfigError(key, 'must be true or false');
  return v;
}

function oneOf<T extends string>(o: Record<string, unknown>, key: string, fallback: T, choices: readonly T[]): T {
  const v = o[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) throw new ConfigError(key, `must be one of ${choices.join(', ')}`);
  return v as T;
}

function peers(raw: unknown): PeerConfig[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new ConfigError('peers', 'must be a list');
  return raw.map((p, i) => {
    const key = `peers[${i}]`;
    if (typeof p !== 'object' || p === null) throw new ConfigError(key, 'must be a mapping');
    const o = p as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!PEER_KEYS.has(k)) throw new ConfigError(`${key}.${k}`, 'unknown key');
    const name = str(o, 'name', '');
    if (!isValidNodeName(name)) throw new ConfigError(`${key}.name`, 'must be a valid node name');
    const need = (k: string) => {
      const v = str(o, k, '');
      if (!v) throw new ConfigError(`${key}.${k}`, 'is required');
      return v;
    };
    const peer: PeerConfig = {
      name,
      sshHost: need('sshHost'),
      sshPort: int(o, 'sshPort', 22, 1, 65535),
      sshUser: str(o, 'sshUser', 'root'),
      sshKeyFile: need('sshKeyFile'),
      hostKey: need('hostKey'),
      dataAddress: need('dataAddress'),
      managerHost: str(o, 'managerHost', '127.0.0.1'),
      managerPort: int(o, 'managerPort', 8080, 1, 65535),
    };
    if (o.url !== undefined) peer.url = str(o, 'url', '');
    return peer;
  });
}

const STATS_KEYS = new Set<string>(['intervalSec', 'source', 'rawRetentionHours', 'minuteRetentionDays', 'hourRetentionDays']);

function stats(raw: unknown, d: StatsConfig): StatsConfig {
  if (raw === undefined || raw === null) return d;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError('stats', 'must be a mapping');
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!STATS_KEYS.has(k)) throw new ConfigError(`stats.${k}`, `unknown key (known keys: ${[...STATS_KEYS].join(', ')})`);
  try {
    return statsValues(o, d);
  } catch (e) {
    // The shared helpers name the bare key; say which block it is in.
    if (e instanceof ConfigError && !e.key.startsWith('stats.')) throw new ConfigError(`stats.${e.key}`, e.message.replace(/^config: [^:]+: /, ''));
    throw e;
  }
}

function statsValues(o: Record<string, unknown>, d: StatsConfig): StatsConfig {
  const intervalSec = int(o, 'intervalSec', d.intervalSec, 1, 60);
  if (60 % intervalSec !== 0) throw new ConfigError('stats.intervalSec', 'must divide 60 evenly (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60)');
  return {
    intervalSec,
    source: oneOf(o, 'source', d.source, ['auto', 'libvirt', 'domstats', 'virt-top'] as const),
    rawRetentionHours: int(o, 'rawRetentionHours', d.rawRetentionHours, 1, 24 * 31),
    minuteRetentionDays: int(o, 'minuteRetentionDays', d.minuteRetentionDays, 1, 366),
    hourRetentionDays: int(o, 'hourRetentionDays', d.hourRetentionDays, 1, 3660),
  };
}

const MAINTENANCE_KEYS = new Set<string>(['maxParallelPerLink', 'reservedMemoryMiB', 'offeredMemoryMiB', 'memoryMarginMiB', 'diskMarginMiB', 'assumedLinkMBps']);

function maintenance(raw: unknown, d: MaintenanceConfig): MaintenanceConfig {
  if (raw === undefined || raw === null) return d;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError('maintenance', 'must be a mapping');
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!MAINTENANCE_KEYS.has(k)) throw new ConfigError(`maintenance.${k}`, `unknown key (known keys: ${[...MAINTENANCE_KEYS].join(', ')})`);
  const n = (key: keyof MaintenanceConfig, min: number, max: number) => {
    try {
      return int(o, key, d[key], min, max);
    } catch (e) {
      throw e instanceof ConfigError ? new ConfigError(`maintenance.${key}`, e.message.replace(/^config: [^:]+: /, '')) : e;
    }
  };
  return {
    maxParallelPerLink: n('maxParallelPerLink', 1, 8),
    reservedMemoryMiB: n('reservedMemoryMiB', 0, 16 * 1024 * 1024),
    offeredMemoryMiB: n('offeredMemoryMiB', 0, 16 * 1024 * 1024),
    memoryMarginMiB: n('memoryMarginMiB', 0, 1024 * 1024),
    diskMarginMiB: n('diskMarginMiB', 0, 1024 * 1024),
    assumedLinkMBps: n('assumedLinkMBps', 1, 100_000),
  };
}
