import { EventEmitter } from 'node:events';
import { AppError, describeError } from '../../errors.js';
import type { Vm } from '../../domain/vm.js';
import { diffNodeView, inactiveReason, type InventoryChange, type NodeView } from '../../domain/inventory-view.js';

/** How one node's VMs are read: the local inventory, or a peer's manager through SSH. */
export interface NodeSource {
  name: string;
  local: boolean;
  url?: string;
  read(timeoutMs: number): Promise<Vm[]>;
}

export interface InventoryCacheOptions {
  refreshMs: number;
  /** A refresh that has not answered in this long counts as failed (its node goes inactive). */
  timeoutMs: number;
  now?: () => number;
}

interface Slot {
  source: NodeSource;
  view: NodeView;
  running: Promise<void> | null;
  /** A refresh was asked for while one ran (a job ended meanwhile): run once more after it. */
  again: boolean;
  timer: NodeJS.Timeout | null;
}

/**
 * A recent view of every node's VMs, kept in the background so that drawing the page
 * asks no node anything. Each node has its own refresh loop: one slow or hung peer
 * never delays another, a refresh is bounded by a timeout, and refreshes of the same
 * node never overlap. Emits 'changes' (InventoryChange[]) after each refresh that changed something.
 */
/** A node not read yet: "never" until its first refresh answers. */
function newSlot(s: NodeSource): Slot {
  return {
    source: s,
    view: { name: s.name, local: s.local, ...(s.url ? { url: s.url } : {}), state: 'never', vms: [], at: null, reason: null },
    running: null,
    again: false,
    timer: null,
  };
}

export class InventoryCache extends EventEmitter {
  private readonly slots = new Map<string, Slot>();
  private readonly now: () => number;
  private stopped = true;
  private first: Promise<unknown> | null = null;

  constructor(sources: readonly NodeSource[], private readonly opts: InventoryCacheOptions) {
    super();
    this.now = opts.now ?? Date.now;
    for (const s of sources) {
      this.slots.set(s.name, newSlot(s));
    }
  }

  /**
   * The node list changed (a join or remove re-read the peers): new nodes get a slot and
   * are read at once, gone ones stop and disappear; the others keep their view and loop.
   */
  setSources(sources: readonly NodeSource[]): void {
    const wanted = new Set(sources.map((s) => s.name));
    for (const [name, slot] of this.slots) {
      if (wanted.has(name)) continue;
      if (slot.timer) clearTimeout(slot.timer);
      this.slots.delete(name);
    }
    for (const s of sources) {
      if (this.slots.has(s.name)) continue;
      this.slots.set(s.name, newSlot(s));
      if (!this.stopped) void this.refresh(s.name);
    }
  }

  /** Starts every node's loop; the first refreshes run at once. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.first = Promise.all([...this.slots.keys()].map((name) => this.refresh(name)));
  }

  /**
   * Right after start-up nothing is known yet: the first page waits for the first round
   * of refreshes, at most `maxMs` (a node still not answered then shows "not reached yet").
   * Later calls return at once.
   */
  async ready(maxMs: number): Promise<void> {
    if (!this.first) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.first, new Promise((r) => (timer = setTimeout(r, maxMs)))]);
    clearTimeout(timer);
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.slots.values()) {
      if (s.timer) clearTimeout(s.timer);
      s.timer = null;
    }
  }

  /** Every node's view, in the order the sources were given (this node first). */
  views(): NodeView[] {
    return [...this.slots.values()].map((s) => s.view);
  }

  view(name: string): NodeView | null {
    return this.slots.get(name)?.view ?? null;
  }

  /**
   * Re-reads one node now (a job on it just ended). Resolves when a refresh that began
   * after this call has finished; unknown names are ignored.
   */
  refresh(name: string): Promise<void> {
    const slot = this.slots.get(name);
    if (!slot) return Promise.resolve();
    if (slot.running) {
      slot.again = true;
      // The refresh under way may have read the node before the change: wait for the next one too.
      return slot.running.then(() => slot.running ?? undefined);
    }
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
    slot.running = this.runOnce(slot).finally(() => {
      slot.running = null;
      if (slot.again) {
        slot.again = false;
        void this.refresh(name);
      } else this.schedule(slot);
    });
    return slot.running;
  }

  private schedule(slot: Slot): void {
    if (this.stopped) return;
    slot.timer = setTimeout(() => void this.refresh(slot.source.name), this.opts.refreshMs);
    slot.timer.unref();
  }

  private async runOnce(slot: Slot): Promise<void> {
    const prev = slot.view;
    let next: NodeView;
    try {
      const vms = await withTimeout(slot.source.read(this.opts.timeoutMs), this.opts.timeoutMs, slot.source);
      // An unchanged list keeps its identity, so what is drawn from it (the page's cached rows) stays valid.
      const same = prev.vms.length === vms.length && JSON.stringify(prev.vms) === JSON.stringify(vms);
      next = { ...prev, state: 'active', vms: same ? prev.vms : vms, at: this.now(), reason: null };
    } catch (e) {
      const code = e instanceof AppError ? e.code : undefined;
      const message = e instanceof AppError ? e.message : describeError(e);
      next = { ...prev, state: 'inactive', reason: inactiveReason(slot.source.local, code, message) };
    }
    slot.view = next;
    const changes: InventoryChange[] = diffNodeView(prev, next);
    if (changes.length > 0) this.emit('changes', changes);
  }
}

/** The source's own timeout should fire first; this one holds even if it does not. */
function withTimeout<T>(p: Promise<T>, ms: number, source: NodeSource): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      const what = source.local ? 'libvirt does not answer' : `node ${source.name} did not answer`;
      reject(new AppError(source.local ? 'LIBVIRT_UNREACHABLE' : 'NODE_UNREACHABLE', `${what}: no inventory within ${Math.round(ms / 1000)} s.`));
    }, ms);
    p.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e: unknown) => (clearTimeout(timer), reject(e)),
    );
  });
}
