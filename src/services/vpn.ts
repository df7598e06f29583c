import type { Config, PeerConfig } from '../config.js';
import { inSubnet } from '../config-vpn.js';
import { AppError } from '../errors.js';
import type { CommandRunner } from '../adapters/process/run-command.js';
import { OpenVpnInstance, type VpnStatus } from '../adapters/openvpn/openvpn-instance.js';

export type VpnView = VpnStatus | { configured: false };

/** This node's tunnel: status, start, stop, and whether a peer is cut off because the tunnel is down. */
export class VpnService {
  readonly instance: OpenVpnInstance | null;

  constructor(config: Config, run: CommandRunner, sleep: (ms: number) => Promise<void>) {
    this.instance = config.vpn ? new OpenVpnInstance(config.vpn, run, sleep) : null;
  }

  get configured(): boolean {
    return this.instance !== null;
  }

  status(): Promise<VpnView> {
    return this.instance ? this.instance.status() : Promise.resolve({ configured: false });
  }

  start(): Promise<VpnStatus> {
    return this.need().start();
  }

  stop(): Promise<VpnStatus> {
    return this.need().stop();
  }

  /**
   * Why a peer cannot be reached, when the tunnel explains it: the peer's address is
   * inside the VPN subnet and this node's tunnel is down, or (on the server) the peer
   * is not among the connected clients. Null when the tunnel is not the problem.
   */
  async blockReason(peer: PeerConfig): Promise<string | null> {
    const inst = this.instance;
    if (!inst || !inSubnet(peer.sshHost, inst.cfg.subnet)) return null;
    const s = await inst.status();
    if (!s.active) return `The VPN on this node is stopped, and node ${peer.name} is reached only through it (${peer.sshHost}); start the VPN first.`;
    if (!s.address) return `The VPN on this node is not connected yet, and node ${peer.name} is reached only through it (${peer.sshHost}).`;
    if (s.role === 'server' && !s.peers.some((p) => p.tunnelAddress === peer.sshHost)) {
      return `Node ${peer.name} is not connected to this node's VPN (${peer.sshHost}); start the VPN on ${peer.name}.`;
    }
    return null;
  }

  private need(): OpenVpnInstance {
    if (!this.instance) throw new AppError('NOT_FOUND', 'No VPN is configured on this node (vpn: in the config file).');
    return this.instance;
  }
}
