import { Hypervisor } from '@unraid/libvirt';
import { AppError, describeError } from '../../errors.js';
import { bindingSlots, CallLimit, promiseOf } from './call-limit.js';

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

  constructor(
    readonly uri: string,
    readonly timeoutMs = DEFAULT_LIBVIRT_TIMEOUT_MS,
    limit?: CallLimit,
    // Tests hand in a scripted binding to hold calls the way a stopped libvirtd does.
    private readonly newBinding: (uri: string) => Hypervisor = (uri) => new Hypervisor({ uri }),
  ) {
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
    if (h) await handleOf(h)?.close();
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
    // Not awaited: on a hung libvirtd the close waits for the stuck calls, and nothing waits for it.
    void handleOf(h)?.close();
  }

  private open(): Promise<Hypervisor> {
    if (this.hypervisor) return Promise.resolve(this.hypervisor);
    if (!this.opening) {
      this.opening = (async () => {
        // The open runs on the handle too: a timed-out open still finishes on its thread
        // later, and only then may the connection it made be closed.
        const h = new OpenHandle(this.newBinding(this.uri), this.limit, this.timeoutMs).hypervisor;
        try {
          await h.connectOpen();
        } catch (e) {
          void handleOf(h)?.close();
          if (isNoAnswer(e)) throw e;
          throw new AppError('LIBVIRT_UNREACHABLE', `Cannot connect to libvirt at ${this.uri}; check that libvirtd is running on this node.`, {
            detail: describeError(e),
            cause: e,
          });
        }
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

const handles = new WeakMap<Hypervisor, OpenHandle>();
const handleOf = (h: Hypervisor) => handles.get(h);

/**
 * One open binding connection, used through `hypervisor`: the same Hypervisor, each method
 * call going through the limit with a timeout.
 *
 * The binding's connectClose is a bare virConnectClose on the pointer it keeps (never
 * cleared), and libvirt's connection-level calls hold no reference of their own. So a close
 * while a call is still blocked on the connection (every call a SIGSTOPped libvirtd holds),
 * or a second close of the same handle (each failed call used to drop it), frees the
 * connection under a running thread: when libvirtd resumed, the manager died with no
 * JavaScript error. Here a handle is closed once, only after its last running call
 * returned, and no call starts on it once a close was asked.
 */
class OpenHandle {
  readonly hypervisor: Hypervisor;
  private running = 0;
  private closeAsked = false;
  private closed: Promise<void> | null = null;

  constructor(private readonly raw: Hypervisor, private readonly limit: CallLimit, private readonly timeoutMs: number) {
    this.hypervisor = new Proxy(raw, {
      get: (target, prop, receiver) => {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function' || typeof prop !== 'string') return v;
        if (prop === 'connectClose') return () => this.close();
        const what = prop === 'connectOpen' ? 'opening the connection' : `libvirt ${prop}`;
        return (...args: unknown[]) => limit.run(() => this.start(() => (v as (...a: unknown[]) => Promise<unknown>).apply(target, args)), timeoutMs, what);
      },
    });
    handles.set(this.hypervisor, this);
  }

  /** Asks for the close; it happens when no call runs on the connection any more. */
  close(): Promise<void> {
    this.closeAsked = true;
    return this.closeWhenIdle();
  }

  private start<T>(call: () => Promise<T>): Promise<T> {
    // A call that waited for a slot while the handle was dropped must not touch it.
    if (this.closeAsked) return Promise.reject(new AppError('LIBVIRT_UNREACHABLE', 'The libvirt connection was closed after a failure; try again.'));
    this.running++;
    return promiseOf(call).finally(() => {
      this.running--;
      if (this.closeAsked) void this.closeWhenIdle();
    });
  }

  private closeWhenIdle(): Promise<void> {
    if (this.running > 0) return Promise.resolve();
    this.closed ??= this.limit.run(() => this.raw.connectClose(), this.timeoutMs, 'libvirt connectClose').then(
      () => undefined,
      () => undefined,
    );
    return this.closed;
  }
}
