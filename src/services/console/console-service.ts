import type { Duplex } from 'node:stream';
import { AppError, describeError } from '../../errors.js';
import { CONSOLE_CLOSE, isLoopbackOnly, TICKET_REFUSAL_TEXT, type ConsoleCloseCode } from '../../domain/console.js';
import { isValidNodeName, requireVmName } from '../../domain/names.js';
import { ConsoleTickets } from './console-tickets.js';
import { ConsoleError, VncEndpoints, type VncTarget } from './vnc-endpoint.js';
import { VmWhereabouts, type MovedTo } from './vm-whereabouts.js';

export const CONSOLE_WS_PATH = '/console/ws';

export interface ConsoleStatus {
  node: string;
  vm: string;
  available: boolean;
  /** One sentence for the page: why there is no console, or where the VNC server is. */
  message: string;
  code: ConsoleCloseCode | null;
  movedTo: MovedTo | null;
  /** The thesis's plain link for desktop VNC clients. */
  vnc: { host: string; port: number; link: string | null; localOnly: boolean } | null;
}

export type ConsoleConnect = { ok: true; stream: Duplex; target: VncTarget } | { ok: false; closeCode: ConsoleCloseCode; reason: string };

/** Console use cases: status for the page, one-time tickets, and the VNC stream behind a redeemed ticket. */
export class ConsoleService {
  readonly tickets: ConsoleTickets;

  constructor(private readonly endpoints: VncEndpoints, private readonly whereabouts: VmWhereabouts, now: () => number = Date.now) {
    this.tickets = new ConsoleTickets(now);
  }

  requireNode(node: unknown): string {
    if (!isValidNodeName(node) || !this.endpoints.isKnownNode(node)) {
      throw new AppError('NODE_NOT_FOUND', `Node ${String(node)} is not known to this manager.`);
    }
    return node;
  }

  /** `pageHost` is the host name the browser used: for a local VM listening on all addresses, the address to give a desktop client. */
  async status(rawNode: unknown, rawVm: unknown, pageHost?: string): Promise<ConsoleStatus> {
    const node = this.requireNode(rawNode);
    const vm = requireVmName(rawVm, 'vm');
    try {
      const t = await this.endpoints.locate(node, vm);
      const localOnly = isLoopbackOnly(t.listen);
      const wildcard = !t.listen || t.listen === '0.0.0.0' || t.listen === '::';
      const host = !wildcard && !localOnly ? t.listen! : (t.peer?.config.sshHost ?? pageHost ?? node);
      return {
        node, vm, available: true, code: null, movedTo: null,
        message: `The VNC server of VM ${vm} listens on ${t.listen ?? '127.0.0.1'}:${t.port}.`,
        vnc: { host, port: t.port, link: localOnly ? null : `vnc://${host}:${t.port}`, localOnly },
      };
    } catch (e) {
      if (!(e instanceof ConsoleError)) throw e;
      const movedTo = e.closeCode === CONSOLE_CLOSE.VM_GONE ? await this.whereabouts.movedTo(node, vm) : null;
      const message = movedTo ? `VM ${vm} is not on node ${node} any more: it was migrated to node ${movedTo.node}.` : e.message;
      return { node, vm, available: false, code: e.closeCode, movedTo, message, vnc: null };
    }
  }

  /** Issues a ticket only for a console that can open now, so the page fails with a sentence, not a dead socket. */
  async issue(rawNode: unknown, rawVm: unknown): Promise<{ ticket: string; wsPath: string; expiresAt: string }> {
    const node = this.requireNode(rawNode);
    const vm = requireVmName(rawVm, 'vm');
    await this.endpoints.locate(node, vm);
    const { ticket, expiresAt } = this.tickets.issue(node, vm);
    const q = new URLSearchParams({ node, vm, ticket });
    return { ticket, wsPath: `${CONSOLE_WS_PATH}?${q.toString()}`, expiresAt: new Date(expiresAt).toISOString() };
  }

  /** Redeems the ticket first; only then is anything looked up or connected. */
  async connect(node: string, vm: string, ticket: string): Promise<ConsoleConnect> {
    const r = this.tickets.redeem(ticket, node, vm);
    if (!r.ok) {
      const [closeCode, reason] = TICKET_REFUSAL_TEXT[r.reason];
      return { ok: false, closeCode, reason };
    }
    try {
      const target = await this.endpoints.locate(node, vm);
      return { ok: true, stream: await this.endpoints.open(target), target };
    } catch (e) {
      if (e instanceof ConsoleError) return { ok: false, closeCode: e.closeCode, reason: e.message };
      return { ok: false, closeCode: CONSOLE_CLOSE.VNC_UNREACHABLE, reason: `The console of VM ${vm} could not be opened: ${describeError(e)}` };
    }
  }
}
