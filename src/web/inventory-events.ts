import type { Request, RequestHandler, Response } from 'express';
import { AppError } from '../errors.js';
import { coalesceChanges, type InventoryChange, type NodeView } from '../domain/inventory-view.js';
import type { AppDeps } from '../app.js';
import { sameOriginRead } from './guards.js';

const HEARTBEAT_MS = 15_000;
/** Changes arriving within this window go out as one event. */
const COALESCE_MS = 200;
/** A client with this much written but not yet taken by its socket is dropped, not buffered further. */
const MAX_PENDING_BYTES = 256 * 1024;
const MAX_CLIENTS = 200;
const AGES_MS = 5_000;

/** What the hub needs of the cache: its 'changes' events and every node's age. */
export interface ChangeSource {
  on(event: 'changes', listener: (changes: InventoryChange[]) => void): unknown;
  off(event: 'changes', listener: (changes: InventoryChange[]) => void): unknown;
  views(): Pick<NodeView, 'name' | 'at'>[];
}

/** What the hub needs of a client's response: a real http.ServerResponse in production. */
export interface EventSink {
  write(chunk: string): boolean;
  readonly writableLength: number;
  destroy(): void;
}

export interface InventoryEventsOptions {
  coalesceMs?: number;
  maxPendingBytes?: number;
  maxClients?: number;
  heartbeatMs?: number;
  /** How often every client is told each node's age (one number per node), so pages count from it. */
  agesMs?: number;
}

/**
 * Fans the cache's changes out to open pages as Server-Sent Events: changes are
 * collected for a short window and sent as one `inventory` event (diffs, not the whole
 * list), and a client that does not keep up is dropped rather than buffered without bound
 * (its page falls back to reloading).
 */
export class InventoryEvents {
  private readonly clients = new Set<EventSink>();
  private pending: InventoryChange[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly agesTimer: NodeJS.Timeout;
  private readonly onChanges = (changes: InventoryChange[]) => this.push(changes);
  readonly opts: Required<InventoryEventsOptions>;
  /** Clients dropped for not keeping up, since start-up (for tests and the log). */
  dropped = 0;

  constructor(private readonly cache: ChangeSource, opts: InventoryEventsOptions = {}) {
    this.opts = { coalesceMs: COALESCE_MS, maxPendingBytes: MAX_PENDING_BYTES, maxClients: MAX_CLIENTS, heartbeatMs: HEARTBEAT_MS, agesMs: AGES_MS, ...opts };
    cache.on('changes', this.onChanges);
    this.heartbeat = setInterval(() => this.broadcast(': keep-alive\n\n'), this.opts.heartbeatMs);
    this.heartbeat.unref();
    this.agesTimer = setInterval(() => {
      if (this.clients.size === 0) return;
      const at = Object.fromEntries(cache.views().map((v) => [v.name, v.at]));
      this.broadcast(`event: ages\ndata: ${JSON.stringify({ now: Date.now(), at })}\n\n`);
    }, this.opts.agesMs);
    this.agesTimer.unref();
  }

  get size(): number {
    return this.clients.size;
  }

  /** Registers a client; false when the manager already serves as many as it allows. */
  add(sink: EventSink): boolean {
    if (this.clients.size >= this.opts.maxClients) return false;
    this.clients.add(sink);
    this.send(sink, `event: hello\ndata: ${JSON.stringify({ now: Date.now() })}\n\n`);
    return true;
  }

  remove(sink: EventSink): void {
    this.clients.delete(sink);
  }

  push(changes: readonly InventoryChange[]): void {
    this.pending.push(...changes);
    if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => this.flush(), this.opts.coalesceMs);
      this.flushTimer.unref();
    }
  }

  close(): void {
    this.cache.off('changes', this.onChanges);
    clearInterval(this.heartbeat);
    clearInterval(this.agesTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    for (const c of this.clients) c.destroy();
    this.clients.clear();
  }

  private flush(): void {
    this.flushTimer = null;
    const changes = coalesceChanges(this.pending);
    this.pending = [];
    if (changes.length === 0) return;
    this.broadcast(`event: inventory\ndata: ${JSON.stringify({ now: Date.now(), changes })}\n\n`);
  }

  private broadcast(text: string): void {
    for (const c of this.clients) this.send(c, text);
  }

  private send(sink: EventSink, text: string): void {
    if (sink.writableLength > this.opts.maxPendingBytes) {
      this.dropped++;
      this.clients.delete(sink);
      sink.destroy();
      return;
    }
    sink.write(text);
  }
}

/** GET /events: same-origin only (it carries every node's inventory), then the stream. */
export function inventoryEventRoute(deps: Pick<AppDeps, 'trust' | 'inventoryEvents'>): RequestHandler[] {
  return [
    sameOriginRead(deps.trust),
    (req: Request, res: Response) => {
      if (deps.inventoryEvents.size >= deps.inventoryEvents.opts.maxClients) {
        throw new AppError('TOO_MANY_CLIENTS', 'Too many open pages are following this manager; reload later.');
      }
      res.status(200).set({ 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
      res.flushHeaders();
      deps.inventoryEvents.add(res);
      req.on('close', () => deps.inventoryEvents.remove(res));
    },
  ];
}
