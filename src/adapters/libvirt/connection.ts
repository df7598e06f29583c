import { Hypervisor } from '@unraid/libvirt';
import { AppError, describeError } from '../../errors.js';
import { bindingSlots, CallLimit } from './call-limit.js';

export const DEFAULT_LIBVIRT_TIMEOUT_MS = 10_000;

/**
 * One kept-open libvirt connection per node.
 *
 * Every binding call goes through a CallLimit (bounded threads, a timeout each): a hung
 * libvirtd (stopped, deadlocked) makes calls fail with "libvirt does not answer" instead of
 * hanging the manager, and the connection is dropped so the next call opens a fresh one.
 *
 * Reads (`read`) and actions (`act`) differ after a failure. The binding's errors all
 * carry code -1, so a failed call is followed by a cheap liveness probe: if the connection
 * itself is dead (libvirtd restarted), a read is retried once on a fresh connection. An
 * action is never re-run: whether libvirt did it before the connection died is unknown,
 * so the caller reads the state again and decides (see VmPower).
 */
export class LibvirtConnection {
  private hypervisor: Hypervisor | null = null;
  private opening: Promise<Hypervisor> | null = null;
  private readonly limit: CallLimit;

  constructor(readonly uri: string, readonly timeoutMs = DEFAULT_LIBVIRT_TIMEOUT_MS, limit?: CallLimit) {
    this.limit = limit ?? new CallLimit(bindingSlots());
  }

  /** Binding calls still running (a hung libvirtd keeps them); for health and tests. */
  get callsInFlight(): number {
    return this.limit.busy;
  }

  /** Idempotent reads: retried once after a reconnect. */
  async read<T>(op: (h: Hypervisor) => Promise<T>): Promise<T> {
    const h = await this.open();
    try {
      return await op(h);
    } catch (first) {
      if (isNoAnswer(first)) {
        this.drop(h);
        throw first;
      }
      if (await this.isAlive(h)) throw first;
      this.drop(h);
      const fresh = await this.open();
      return op(fresh);
    }
  }

  /** Actions (start, stop, define…): one attempt; a dead connection is dropped, the error stands. */
  async act<T>(op: (h: Hypervisor) => Promise<T>): Promise<T> {
    const h = await this.open();
    try {
      return await op(h);
    } catch (e) {
      if (isNoAnswer(e) || !(await this.isAlive(h))) this.drop(h);
      throw e;
    }
  }

  async close(): Promise<void> {
    const h = this.hypervisor;
    this.hypervisor = null;
    if (h) await h.connectClose().catch(() => undefined);
  }

  private async isAlive(h: Hypervisor): Promise<boolean> {
    try {
      await h.connectGetHostname();
      return true;
    } catch {
      return false;
    }
  }

  private drop(h: Hypervisor): void {
    if (this.hypervisor === h) this.hypervisor = null;
    // Not awaited: on a hung libvirtd the close blocks too, and nothing waits for it.
    h.connectClose().catch(() => undefined);
  }

  private open(): Promise<Hypervisor> {
    if (this.hypervisor) return Promise.resolve(this.hypervisor);
    if (!this.opening) {
      this.opening = (async () => {
        const raw = new Hypervisor({ uri: this.uri });
        try {
          await this.limit.run(() => raw.connectOpen(), this.timeoutMs, 'opening the connection');
        } catch (e) {
          raw.connectClose().catch(() => undefined);
          if (isNoAnswer(e)) throw e;
          throw new AppError('LIBVIRT_UNREACHABLE', `Cannot connect to libvirt at ${this.uri}; check that libvirtd is running on this node.`, {
            detail: describeError(e),
            cause: e,
          });
        }
        const h = limited(raw, this.limit, this.timeoutMs);
        this.hypervisor = h;
        return h;
      })().finally(() => {
        this.opening = null;
      });
    }
    return this.opening;
  }
}

export function isNoAnswer(e: unknown): boolean {
  return e instanceof AppError && e.code === 'LIBVIRT_UNREACHABLE' && e.message.startsWith('libvirt does not answer');
}

/** The same Hypervisor, each method call going through the limit with a timeout. */
function limited(raw: Hypervisor, limit: CallLimit, timeoutMs: number): Hypervisor {
  return new Proxy(raw, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function' || typeof prop !== 'string') return v;
      return (...args: unknown[]) => limit.run(() => (v as (...a: unknown[]) => Promise<unknown>).apply(target, args), timeoutMs, `libvirt ${prop}`);
    },
  });
}
