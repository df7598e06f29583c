import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config, PeerConfig } from '../../config.js';
import { PeerShell } from '../../adapters/ssh/peer-shell.js';
import { buildPeerLibvirtUri, knownHostsText } from '../../adapters/libvirt/peer-uri.js';
import type { CommandRecord, CommandResult } from '../../adapters/process/run-command.js';
import type { NodeStatus } from '../local-node.js';
import { PeerManagerClient } from '../../adapters/peer-api/peer-manager-client.js';
import { RemoteNode } from '../nodes/remote-node.js';
import { readPeerCredentials } from '../../adapters/files/peer-credentials.js';


/** Says why a peer is cut off before anything is tried (e.g. the VPN it sits behind is down), or null. */
export type PeerGate = (peer: PeerConfig) => Promise<string | null>;

/** A peer node: reached by ssh2 for commands, by libvirt over libssh2 for migration. */
export class PeerNode {
  readonly shell: PeerShell;
  /** The peer's own kvm-ferry, through an SSH tunnel. */
  readonly api: PeerManagerClient;
  readonly remote: RemoteNode;
  gate: PeerGate | null = null;

  constructor(readonly config: PeerConfig, private readonly knownHostsFile: string, localName: string, onRecord?: (r: CommandRecord) => void, dataDir?: string) {
    this.shell = new PeerShell(config, onRecord);
    const host = config.managerHost.includes(':') ? `[${config.managerHost}]` : config.managerHost;
    this.api = new PeerManagerClient(config.name, () => this.shell.openTcp(config.managerHost, config.managerPort), `${host}:${config.managerPort}`, () =>
      dataDir ? (readPeerCredentials(dataDir)[config.name] ?? null) : null);
    this.remote = new RemoteNode(config.name, this.api, localName, config.url);
  }

  get name(): string {
    return this.config.name;
  }

  get libvirtUri(): string {
    return buildPeerLibvirtUri(this.config, this.knownHostsFile);
  }

  virsh(args: readonly string[], opts: { check?: boolean; timeoutMs?: number; failureMessage?: string } = {}): Promise<CommandResult> {
    return this.shell.exec('virsh', ['-c', 'qemu:///system', ...args], { timeoutMs: 30_000, ...opts });
  }

  blockedReason(): Promise<string | null> {
    return this.gate ? this.gate(this.config) : Promise.resolve(null);
  }

  /** Up when its kvm-ferry answers through SSH and its libvirtd answers it; one slow peer never holds the page. */
  async status(): Promise<NodeStatus> {
    const blocked = await this.blockedReason();
    if (blocked) return { name: this.name, local: false, status: 'down', reason: blocked, ...(this.config.url ? { url: this.config.url } : {}) };
    return this.remote.status();
  }
}

export class PeerDirectory {
  private readonly peers = new Map<string, PeerNode>();
  private gate: PeerGate | null = null;
  private readonly knownHosts: string;

  constructor(private readonly config: Config, private readonly onRecord?: (r: CommandRecord) => void) {
    this.knownHosts = join(config.dataDir, 'peers_known_hosts');
    this.reload(config.peers);
  }

  /**
   * The peers as the config file now lists them (after a join or remove): new ones are
   * added, gone ones dropped, changed ones rebuilt; unchanged ones keep their connection.
   * config.peers is updated in place, so everything reading it sees the same list.
   */
  reload(peers: readonly PeerConfig[]): void {
    writeFileSync(this.knownHosts, knownHostsText(peers), { mode: 0o600 });
    const next = new Map<string, PeerNode>();
    for (const p of peers) {
      const cur = this.peers.get(p.name);
      const node = cur && JSON.stringify(cur.config) === JSON.stringify(p) ? cur : new PeerNode(p, this.knownHosts, this.config.nodeName, this.onRecord, this.config.dataDir);
      node.gate = this.gate;
      next.set(p.name, node);
    }
    this.peers.clear();
    for (const [k, v] of next) this.peers.set(k, v);
    if (this.config.peers !== peers) this.config.peers.splice(0, this.config.peers.length, ...peers);
  }

  setGate(gate: PeerGate): void {
    this.gate = gate;
    for (const p of this.peers.values()) p.gate = gate;
  }

  all(): PeerNode[] {
    return [...this.peers.values()];
  }

  get(name: string): PeerNode | null {
    return this.peers.get(name) ?? null;
  }
}
