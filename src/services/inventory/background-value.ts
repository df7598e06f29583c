/**
 * One value read in the background every `refreshMs` (never two reads at once), so a
 * page can show the last answer without paying for the read: the create form's host
 * limits (a libvirt call), the VPN panel (an `ip` process).
 */
export class BackgroundValue<T> {
  private last: { ok: true; value: T } | { ok: false; error: unknown } | null = null;
  private running: Promise<void> | null = null;
  private again: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = true;

  constructor(private readonly read: () => Promise<T>, private readonly refreshMs: number) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.refresh();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** The last answer; before the first one has come, waits for it (once, at start-up). */
  async get(): Promise<T> {
    if (!this.last) await (this.running ?? this.refresh());
    const l = this.last!;
    if (l.ok) return l.value;
    throw l.error;
  }

  /**
   * Reads now. A read already under way may have begun before the change the caller made
   * (the VPN was just stopped): then one more read follows it, and the promise is that one's.
   */
  refresh(): Promise<void> {
    if (this.running) {
      this.again ??= this.running.then(() => {
        this.again = null;
        return this.refresh();
      });
      return this.again;
    }
    if (this.timer) clearTimeout(this.timer);
    this.running = this.read()
      .then(
        (value) => void (this.last = { ok: true, value }),
        (error: unknown) => void (this.last = { ok: false, error }),
      )
      .finally(() => {
        this.running = null;
        if (!this.stopped) {
          this.timer = setTimeout(() => void this.refresh(), this.refreshMs);
          this.timer.unref();
        }
      });
    return this.running;
  }
}
