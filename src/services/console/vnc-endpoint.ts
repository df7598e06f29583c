import { connect, isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { AppError, describeError, type ErrorCode } from '../../errors.js';
import { CONSOLE_CLOSE, type ConsoleCloseCode, vncConnectHost } from '../../domain/console.js';
import { isActive, VM_STATE_LABELS, vmStateFromLibvirt, type VmState } from '../../domain/vm.js';
import { parseDomainXml, type DomainDescription } from '../../adapters/libvirt/domain-xml.js';
import { domainLookup } from '../../adapters/libvirt/domain.js';
import { isUuid } from '../../domain/uuid.js';
import type { LibvirtConnection } from '../../adapters/libvirt/connection.js';
import type { PeerDirectory, PeerNode } from '../migration/peer-nodes.js';

const CONNECT_TIMEOUT_MS = 5_000;

/** An AppError that also says how the console websocket should close for it. */
export class ConsoleError extends AppError {
  constructor(readonly closeCode: ConsoleCloseCode, code: ErrorCode, message: string, opts: { detail?: string } = {}) {
    super(code, message, opts);
  }
}

export interface VncTarget {
  node: string;
  vm: string;
  /** Address as seen from that node: the VNC server normally listens on its loopback only. */
  host: string;
  port: number;
  listen: string | null;
  peer: PeerNode | null;
}

/** Where a VM's VNC server is (this node or a peer) and how to open a byte stream to it. */
export class VncEndpoints {
  constructor(private readonly localName: string, private readonly conn: LibvirtConnection, private readonly peers: PeerDirectory) {}

  isKnownNode(node: string): boolean {
    return node === this.localName || this.peers.get(node) !== null;
  }

  async locate(node: string, vm: string): Promise<VncTarget> {
    if (node === this.localName) {
      const snap = await domainLookup(this.conn, vm);
      if (!snap) throw gone(vm, node);
      return target(node, vm, vmStateFromLibvirt(snap.stateCode), snap.description, null);
    }
    const peer = this.peers.get(node);
    if (!peer) throw new ConsoleError(CONSOLE_CLOSE.VM_GONE, 'NODE_NOT_FOUND', `Node ${node} is not known to this manager.`);
    // The peer's virsh would read an all-digit name as a domain id: find the UUID by exact
    // name in its list first, then read the live XML (VNC port, and an id only while active) by UUID.
    const uuid = await peerUuidOf(peer, vm);
    const xml = await peer.virsh(['dumpxml', '--domain', uuid], { check: false }).catch((e) => {
      throw unreachable(node, e);
    });
    if (xml.exitCode !== 0) throw await peerMissingOrFailed(peer, vm, uuid, (xml.stderr || xml.stdout).trim());
    const d = parseDomainXml(xml.stdout);
    // virsh falls back to a name lookup when no domain has the UUID: accept only the VM asked for.
    if (d.uuid.toLowerCase() !== uuid) throw gone(vm, node);
    return target(node, vm, d.id === null ? 'shut-off' : 'running', d, peer);
  }

  /** A raw TCP stream to the VNC server; for a peer it rides inside SSH to the peer's own loopback. */
  async open(t: VncTarget): Promise<Duplex> {
    if (t.peer) {
      return t.peer.shell.openTcp(t.host, t.port).catch((e: unknown) => {
        throw new ConsoleError(CONSOLE_CLOSE.VNC_UNREACHABLE, 'NODE_UNREACHABLE', `Could not reach the VNC server of VM ${t.vm} on node ${t.node}.`, { detail: describeError(e) });
      });
    }
    return new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: t.host, port: t.port });
      s.setTimeout(CONNECT_TIMEOUT_MS, () => s.destroy(new Error(`no answer within ${CONNECT_TIMEOUT_MS} ms`)));
      s.once('connect', () => {
        s.setTimeout(0);
        s.setNoDelay(true);
        resolve(s);
      });
      s.once('error', (e) => reject(new ConsoleError(CONSOLE_CLOSE.VNC_UNREACHABLE, 'COMMAND_FAILED', `Could not reach the VNC server of VM ${t.vm} at ${t.host}:${t.port}.`, { detail: e.message })));
    });
  }
}

function target(node: string, vm: string, state: VmState, d: DomainDescription, peer: PeerNode | null): VncTarget {
  if (!isActive(state)) {
    throw new ConsoleError(CONSOLE_CLOSE.VM_NOT_RUNNING, 'VM_STATE_CONFLICT', `VM ${vm} is not running (${VM_STATE_LABELS[state]}); start it to use its console.`);
  }
  if (!d.vnc || d.vnc.port === null || d.vnc.port > 65535) {
    throw new ConsoleError(CONSOLE_CLOSE.NO_VNC, 'VM_STATE_CONFLICT', `VM ${vm} has no VNC display; add VNC graphics to it to use the console.`);
  }
  return { node, vm, host: vncConnectHost(d.vnc.listen, (s) => isIP(s) !== 0), port: d.vnc.port, listen: d.vnc.listen, peer };
}

/** `virsh list --all --uuid --name` prints "<uuid> <name>" per domain; names may hold spaces, never newlines. */
export function parseUuidNameList(stdout: string): Map<string, string> {
  const byName = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = /^\s*([0-9a-fA-F-]{36})\s(.*)$/.exec(line);
    if (m && isUuid(m[1]!.toLowerCase())) byName.set(m[2]!.trim(), m[1]!.toLowerCase());
  }
  return byName;
}

async function peerList(peer: PeerNode): Promise<Map<string, string>> {
  const list = await peer.virsh(['list', '--all', '--uuid', '--name'], { failureMessage: `Could not list the VMs on node ${peer.name}.` }).catch((e) => {
    throw unreachable(peer.name, e);
  });
  return parseUuidNameList(list.stdout);
}

/** The peer's UUID for this exact name; "gone" when its list does not show the name. */
async function peerUuidOf(peer: PeerNode, vm: string): Promise<string> {
  const uuid = (await peerList(peer)).get(vm);
  if (!uuid) throw gone(vm, peer.name);
  return uuid;
}

/** The peer could not show the VM: decide "gone" by listing its VMs, never by parsing the error text. */
async function peerMissingOrFailed(peer: PeerNode, vm: string, uuid: string, detail: string): Promise<ConsoleError> {
  const list = await peerList(peer).catch((e: unknown) => e);
  if (list instanceof ConsoleError) return list;
  if (!(list instanceof Map) || list.get(vm) !== uuid) return gone(vm, peer.name);
  return new ConsoleError(CONSOLE_CLOSE.NODE_UNREACHABLE, 'LIBVIRT_FAILED', `Could not read VM ${vm} on node ${peer.name}.`, { detail });
}

function gone(vm: string, node: string): ConsoleError {
  return new ConsoleError(CONSOLE_CLOSE.VM_GONE, 'VM_NOT_FOUND', `VM ${vm} is not on node ${node}: it was migrated away or deleted.`);
}

function unreachable(node: string, e: unknown): ConsoleError {
  if (e instanceof ConsoleError) return e;
  const message = e instanceof AppError ? e.message : `Node ${node} did not answer.`;
  return new ConsoleError(CONSOLE_CLOSE.NODE_UNREACHABLE, 'NODE_UNREACHABLE', message, { detail: describeError(e) });
}
