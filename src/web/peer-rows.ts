import type { Application } from 'express';
import type { Vm } from '../domain/vm.js';

/** Stands for the form token in cached rows; each request puts its own token in its place. */
const TOKEN_SLOT = 'kf-csrf-slot-7f3a9c';

/**
 * A peer's VM table, drawn once per change of its list rather than once per request:
 * with 8 peers of 100 VMs, drawing 800 rows on every request was most of the page's cost.
 * The rows carry form tokens, which are per request: they are cached with a slot that
 * `fill` replaces.
 */
export class PeerRowsCache {
  private readonly cache = new Map<string, { vms: Vm[]; nodeNames: string; html: string }>();

  constructor(private readonly app: () => Application) {}

  async rows(node: string, vms: Vm[], nodeNames: string[]): Promise<string> {
    const key = nodeNames.join('\n');
    const hit = this.cache.get(node);
    if (hit && hit.vms === vms && hit.nodeNames === key) return hit.html;
    const html = await new Promise<string>((resolve, reject) =>
      this.app().render('partials/vm-table', { vms, nodeName: node, local: false, nodeNames, sparks: new Map(), csrfToken: TOKEN_SLOT }, (err, out) => (err ? reject(err) : resolve(out))),
    );
    this.cache.set(node, { vms, nodeNames: key, html });
    return html;
  }

  static fill(html: string, token: string): string {
    return html.split(TOKEN_SLOT).join(token);
  }
}
