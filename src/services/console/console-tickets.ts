import { randomBytes, timingSafeEqual } from 'node:crypto';

/** Why a ticket was refused; each maps to a websocket close code the page explains. */
export type TicketRefusal = 'unknown' | 'used' | 'expired' | 'wrong-vm';

export interface IssuedTicket {
  ticket: string;
  expiresAt: number;
}

interface Entry {
  node: string;
  vm: string;
  expiresAt: number;
  used: boolean;
}

export const TICKET_TTL_MS = 30_000;
/** Used and expired tickets are remembered this long so a replay is reported as "used"/"expired", not "unknown". */
const TOMBSTONE_MS = 10 * 60_000;
const MAX_ENTRIES = 2_000;

/**
 * One-time console tickets. Browsers do not all send basic-auth credentials on a
 * websocket handshake, so the ticket (32 random bytes, issued by an authenticated
 * POST) is what really authorises a console: bound to one node and VM, usable once,
 * within a short time. Kept in memory: a restart simply invalidates them.
 */
export class ConsoleTickets {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly now: () => number = Date.now, private readonly ttlMs = TICKET_TTL_MS) {}

  issue(node: string, vm: string): IssuedTicket {
    this.prune();
    const ticket = randomBytes(32).toString('base64url');
    const expiresAt = this.now() + this.ttlMs;
    this.entries.set(ticket, { node, vm, expiresAt, used: false });
    return { ticket, expiresAt };
  }

  /** Consumes the ticket if it is valid for node+vm; a ticket presented for another VM is burnt too. */
  redeem(ticket: string, node: string, vm: string): { ok: true } | { ok: false; reason: TicketRefusal } {
    const e = typeof ticket === 'string' && /^[A-Za-z0-9_-]{43}$/.test(ticket) ? this.entries.get(ticket) : undefined;
    if (!e) return { ok: false, reason: 'unknown' };
    if (e.used) return { ok: false, reason: 'used' };
    e.used = true;
    if (this.now() > e.expiresAt) return { ok: false, reason: 'expired' };
    if (!sameText(e.node, node) || !sameText(e.vm, vm)) return { ok: false, reason: 'wrong-vm' };
    return { ok: true };
  }

  get size(): number {
    return this.entries.size;
  }

  private prune(): void {
    const now = this.now();
    for (const [k, e] of this.entries) {
      if (now > e.expiresAt + TOMBSTONE_MS) this.entries.delete(k);
    }
    // A flood of issued tickets must not grow memory without bound: drop the oldest.
    while (this.entries.size >= MAX_ENTRIES) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
