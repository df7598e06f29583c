import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppError } from '../../errors.js';
import { TypedStats } from '../../domain/stats/typed-stats.js';

/** virDomainStatsTypes bits (libvirt-domain.h). */
export const STATS_GROUP = { state: 1, cpuTotal: 2, balloon: 4, vcpu: 8, interface: 16, block: 32 } as const;
/** VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE: running and paused VMs only. */
const ACTIVE = 1;

/** See stats_value in native/domstats.c. */
type Answer = [generation: number, names: string[], uuids: string[], meta: Int32Array, values: Float64Array, newLayouts: [number, string][]];
interface Addon {
  open(uri: string): Promise<object>;
  allDomainStats(conn: object, groups: number, flags: number): Promise<Answer>;
  close(conn: object): void;
  forgetLayouts(): void;
}

/**
 * Parameter-name layouts the addon numbered (its table is per process, so this copy is too):
 * layout number → name → index. A new generation means the addon started its table again.
 */
const layouts = new Map<number, Map<string, number>>();
let layoutGeneration = 0;

function learnLayouts(generation: number, fresh: [number, string][]): void {
  if (generation !== layoutGeneration) {
    layouts.clear();
    layoutGeneration = generation;
  }
  for (const [id, text] of fresh) layouts.set(id, new Map(text === '' ? [] : text.split('\n').map((k, i) => [k, i] as const)));
}

/** One running VM's statistics, read-only typed parameters by name. */
export interface DomainStatsRecord {
  name: string;
  uuid: string;
  id: number;
  values: TypedStats;
}

let loaded: Addon | null | undefined;

/** The addon built by scripts/build-native.sh, or null with the reason when it is not there. */
export function loadNativeDomStats(): { addon: Addon | null; reason: string | null } {
  if (loaded !== undefined) return { addon: loaded, reason: loaded ? null : loadReason };
  const file = addonPath();
  if (!file) {
    loaded = null;
    loadReason = 'native/build/kf_domstats.node is not built (scripts/build-native.sh)';
  } else {
    try {
      loaded = createRequire(import.meta.url)(file) as Addon;
    } catch (e) {
      loaded = null;
      loadReason = `${file} does not load: ${(e as Error).message}`;
    }
  }
  return { addon: loaded, reason: loaded ? null : loadReason };
}
let loadReason = '';

/** Walks up from this module (src/ under tsx, dist/src/ when built) to the repository's native/build. */
function addonPath(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const f = join(dir, 'native', 'build', 'kf_domstats.node');
    if (existsSync(f)) return f;
    dir = dirname(dir);
  }
  return null;
}

/**
 * virConnectGetAllDomainStats on its own read-only connection: every running VM's counters
 * in one RPC, no text to format or parse (the addon: native/domstats.c).
 *
 * One call at a time. A call without an answer in `timeoutMs` (libvirtd stopped or hung)
 * fails the tick with a sentence; the connection is then dropped and closed only once that
 * call has returned (libvirt's connection-level calls hold no reference of their own, so
 * closing under a blocked call frees memory that thread still uses), and until it returns
 * every read fails at once instead of blocking another pool thread.
 */
export class NativeDomStats {
  private conn: object | null = null;
  private busy: Promise<unknown> | null = null;

  constructor(private readonly addon: Addon, readonly uri: string, private readonly timeoutMs = 10_000, private readonly groups = STATS_GROUP.cpuTotal | STATS_GROUP.balloon | STATS_GROUP.vcpu | STATS_GROUP.interface | STATS_GROUP.block) {}

  async read(): Promise<DomainStatsRecord[]> {
    if (this.busy) throw new AppError('LIBVIRT_UNREACHABLE', `libvirt does not answer: the last statistics call to ${this.uri} has not returned yet.`);
    const conn = this.conn ?? (await this.guard(this.addon.open(this.uri), 'opening the connection', null));
    this.conn = conn;
    const [generation, names, uuids, meta, values, fresh] = await this.guard(this.addon.allDomainStats(conn, this.groups, ACTIVE), 'virConnectGetAllDomainStats', conn);
    learnLayouts(generation, fresh);
    const out: DomainStatsRecord[] = [];
    for (let i = 0; i < names.length; i++) {
      const layout = layouts.get(meta[3 * i + 1]!);
      if (!layout) {
        // Only if something else in this process read the addon's answers: start the table again.
        this.addon.forgetLayouts();
        throw new AppError('INTERNAL', `The statistics addon answered with layout ${meta[3 * i + 1]} this reader was never told; the next read starts afresh.`);
      }
      out.push({ name: names[i]!, uuid: uuids[i]!, id: meta[3 * i]!, values: new TypedStats(layout, values, meta[3 * i + 2]!) });
    }
    return out;
  }

  close(): void {
    const conn = this.conn;
    this.conn = null;
    if (!conn) return;
    if (this.busy) void this.busy.finally(() => this.addon.close(conn));
    else this.addon.close(conn);
  }

  /** Times the call out; after a timeout the connection it used is closed once the call returns. */
  private guard<T>(call: Promise<T>, what: string, conn: object | null): Promise<T> {
    const running = call.finally(() => {
      this.busy = null;
    });
    this.busy = running.catch(() => undefined);
    return new Promise<T>((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        // Whatever this call holds is given up: the next read opens a fresh connection.
        if (this.conn === conn) this.conn = null;
        running.then(
          (v) => this.addon.close(conn ?? (v as object)),
          () => (conn ? this.addon.close(conn) : undefined),
        );
        reject(new AppError('LIBVIRT_UNREACHABLE', `libvirt does not answer: ${what} got no reply in ${Math.round(this.timeoutMs / 1000)} s.`));
      }, this.timeoutMs);
      running.then(
        (v) => {
          if (timedOut) return;
          clearTimeout(timer);
          resolve(v);
        },
        (e: unknown) => {
          if (timedOut) return;
          clearTimeout(timer);
          // A failed call on a dead connection (libvirtd restarted): start fresh next time.
          if (conn && this.conn === conn) {
            this.conn = null;
            this.addon.close(conn);
          }
          reject(new AppError('LIBVIRT_UNREACHABLE', `Cannot read statistics from libvirt at ${this.uri}: ${(e as Error).message}`));
        },
      );
    });
  }
}
