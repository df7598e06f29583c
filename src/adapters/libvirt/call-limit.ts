import { AppError } from '../../errors.js';

/**
 * Every binding call runs on a libuv pool thread and blocks it until libvirtd answers. A
 * stopped libvirtd would hold every thread of the pool, and file reads, DNS and crypto
 * (which share it) would wait behind them. So at most `max` binding calls are in flight,
 * leaving the rest of the pool free; a call that times out keeps its slot until the thread
 * really returns, because that thread is still blocked.
 */
export class CallLimit {
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly max: number) {}

  get busy(): number {
    return this.inFlight;
  }

  /** Runs `call` in a slot; rejects after `timeoutMs` (waiting for a slot counts) with a sentence. */
  run<T>(call: () => Promise<T>, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const timer = setTimeout(() => {
        done = true;
        const i = this.waiting.indexOf(go);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new AppError('LIBVIRT_UNREACHABLE', `libvirt does not answer: ${what} got no reply in ${Math.round(timeoutMs / 1000)} s.`, {
          detail: `${this.inFlight} of ${this.max} libvirt calls still waiting for libvirtd`,
        }));
      }, timeoutMs);
      const go = () => {
        if (done) return;
        this.inFlight++;
        promiseOf(call).then(
          (v) => {
            clearTimeout(timer);
            if (!done) resolve(v);
            done = true;
          },
          (e) => {
            clearTimeout(timer);
            if (!done) reject(e);
            done = true;
          },
        ).finally(() => {
          this.inFlight--;
          this.waiting.shift()?.();
        });
      };
      if (this.inFlight < this.max) go();
      else this.waiting.push(go);
    });
  }
}

/** The promise `call` returns, or its synchronous throw as a rejection. */
export function promiseOf<T>(call: () => Promise<T>): Promise<T> {
  try {
    return call();
  } catch (e) {
    return Promise.reject(e);
  }
}

/** libuv's pool size this process runs with (set in src/threadpool.ts before first use). */
export function threadPoolSize(): number {
  const n = Number(process.env.UV_THREADPOOL_SIZE);
  return Number.isInteger(n) && n > 0 ? n : 4;
}

/** Binding calls may take the pool but for 4 threads kept for files, DNS and crypto. */
export function bindingSlots(): number {
  return Math.max(2, threadPoolSize() - 4);
}
