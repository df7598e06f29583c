import { existsSync, readFileSync, statSync } from 'node:fs';
import type { VpnConfig } from '../../config-vpn.js';
import { AppError } from '../../errors.js';
import type { CommandRunner } from '../process/run-command.js';
import { buildOpenvpnStartArgs, isOurInstance } from './openvpn-args.js';
import { parseClientConfig, parseIpAddr, parseIpLinkStats, parseStatusFile } from './openvpn-status.js';

export interface VpnPeer {
  name: string;
  tunnelAddress: string | null;
  realAddress: string | null;
  bytesIn: number | null;
  bytesOut: number | null;
  since: string | null;
}

export interface VpnStatus {
  configured: true;
  active: boolean;
  pid: number | null;
  since: string | null;
  role: 'server' | 'client' | null;
  interface: string;
  /** "a.b.c.d/len" once the tunnel has its address. */
  address: string | null;
  subnet: string;
  /** Bytes received / sent on the tunnel device since it appeared. */
  bytesIn: number | null;
  bytesOut: number | null;
  peers: VpnPeer[];
}

const START_WAIT_MS = 10_000;
const STOP_WAIT_MS = 5_000;

/**
 * THE configured OpenVPN instance of this node, and nothing else: it is started from
 * the fixed config file and stopped only after /proc confirms the recorded PID is an
 * openvpn running that file.
 */
export class OpenVpnInstance {
  constructor(
    readonly cfg: VpnConfig,
    private readonly run: CommandRunner,
    private readonly sleep: (ms: number) => Promise<void>,
  ) {}

  /** The PID of our running instance, or null (no pid file, dead, zombie, or some other process). */
  pid(): number | null {
    let text: string;
    try {
      text = readFileSync(this.cfg.pidFile, 'utf8').trim();
    } catch {
      return null;
    }
    if (!/^\d{1,9}$/.test(text)) return null;
    const pid = Number(text);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return null;
      return isOurInstance(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), this.cfg) ? pid : null;
    } catch {
      return null;
    }
  }

  async status(): Promise<VpnStatus> {
    const pid = this.pid();
    const ip = await this.run('ip', ['-j', '-s', 'addr', 'show', 'dev', this.cfg.interface], { check: false, timeoutMs: 5_000 });
    const dev = ip.exitCode === 0 ? ip.stdout : '[]';
    const stats = parseIpLinkStats(dev);
    const base: VpnStatus = {
      configured: true,
      active: pid !== null,
      pid,
      since: pid !== null ? mtimeIso(this.cfg.pidFile) : null,
      role: null,
      interface: this.cfg.interface,
      address: pid !== null ? parseIpAddr(dev) : null,
      subnet: this.cfg.subnet,
      bytesIn: stats?.rxBytes ?? null,
      bytesOut: stats?.txBytes ?? null,
      peers: [],
    };
    if (pid === null) return base;
    const file = parseStatusFile(readOr(this.cfg.statusFile));
    if (file?.role === 'server') {
      base.role = 'server';
      base.peers = file.clients.map((c) => ({ ...c }));
    } else if (file?.role === 'client') {
      base.role = 'client';
      const { remote, serverName } = parseClientConfig(readOr(this.cfg.configFile));
      if (base.address) base.peers = [{ name: serverName ?? 'server', tunnelAddress: null, realAddress: remote, bytesIn: null, bytesOut: null, since: null }];
    }
    return base;
  }

  async start(): Promise<VpnStatus> {
    const running = this.pid();
    if (running !== null) throw new AppError('VPN_STATE_CONFLICT', `The VPN is already running (process ${running}).`);
    if (!existsSync(this.cfg.configFile)) {
      throw new AppError('VPN_FAILED', `The VPN config file ${this.cfg.configFile} does not exist; create it with scripts/vpn-certs.sh.`);
    }
    try {
      await this.run('openvpn', buildOpenvpnStartArgs(this.cfg), { timeoutMs: 15_000 });
    } catch (e) {
      // Option errors go to stderr or, with --log-append, to the log: show both.
      const detail = [e instanceof AppError ? e.detail : String(e), this.logTail()].filter(Boolean).join('\n');
      throw new AppError('VPN_FAILED', 'OpenVPN refused to start; see the detail for why.', { detail, cause: e });
    }
    const started = Date.now();
    for (;;) {
      await this.sleep(200);
      const s = await this.status();
      if (s.active && s.address) return s;
      // The daemon writes its pid file a moment after forking; gone after 2 s means it died.
      if (!s.active && Date.now() - started > 2_000) {
        throw new AppError('VPN_FAILED', 'OpenVPN stopped right after starting; see the detail for its log.', { detail: this.logTail() });
      }
      if (Date.now() - started > START_WAIT_MS) return s; // running but not connected yet (server unreachable): the panel says so
    }
  }

  async stop(): Promise<VpnStatus> {
    const pid = this.pid();
    if (pid === null) throw new AppError('VPN_STATE_CONFLICT', 'The VPN is not running.');
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + STOP_WAIT_MS;
    while (this.pid() === pid) {
      if (Date.now() > deadline) {
        process.kill(pid, 'SIGKILL');
        await this.sleep(200);
        break;
      }
      await this.sleep(100);
    }
    return this.status();
  }

  private logTail(): string {
    return this.cfg.logFile ? readOr(this.cfg.logFile).split('\n').slice(-20).join('\n') : '(no vpn.logFile configured)';
  }
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function mtimeIso(path: string): string | null {
  try {
    return statSync(path).mtime.toISOString();
  } catch {
    return null;
  }
}
