import { Hypervisor } from '@unraid/libvirt';
import { AppError, describeError } from '../../errors.js';

/**
 * One kept-open libvirt connection per node. The binding's errors all carry code -1,
 * so a failed call is followed by a cheap liveness probe: if the connection itself is
 * dead (libvirtd restarted), reopen it and retry the call once.
 */
export class LibvirtConnection {
  private hypervisor: Hypervisor | null = null;
  private opening: Promise<Hypervisor> | null = null;

  constructor(readonly uri: string) {}

  async use<T>(op: (h: Hypervisor) => Promise<T>): Promise<T> {
    const h = await this.open();
    try {
      return await op(h);
    } catch (first) {
      if (await this.isAlive(h)) throw first;
      this.drop(h);
      const fresh = await this.open();
      return op(fresh);
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
    h.connectClose().catch(() => undefined);
  }

  private open(): Promise<Hypervisor> {
    if (this.hypervisor) return Promise.resolve(this.hypervisor);
    if (!this.opening) {
      this.opening = (async () => {
        const h = new Hypervisor({ uri: this.uri });
        try {
          await h.connectOpen();
        } catch (e) {
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
