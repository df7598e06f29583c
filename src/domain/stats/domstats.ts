import type { RamKind } from './sample.js';

/** One domain's block of `virsh domstats --raw` output: "Domain: 'name'" then "  key=value" lines. */
export interface DomStats {
  name: string;
  values: Map<string, string>;
}

export function parseDomStats(text: string): DomStats[] {
  const out: DomStats[] = [];
  let cur: DomStats | null = null;
  for (const line of text.split('\n')) {
    const head = /^Domain: '(.*)'\s*$/.exec(line);
    if (head) {
      cur = { name: head[1]!, values: new Map() };
      out.push(cur);
      continue;
    }
    const kv = /^\s+([A-Za-z0-9_.-]+)=(.*)$/.exec(line);
    if (kv && cur) cur.values.set(kv[1]!, kv[2]!);
  }
  return out;
}

/**
 * RAM from balloon statistics, honestly labelled: `balloon.current` is only what the VM was
 * given; "used" needs the guest's own figures (available − unused − disk caches), which appear
 * once a stats period is set and the guest has a balloon driver. Falls back to `balloon.rss`
 * (QEMU's resident memory, when reported) and only then to the assigned size.
 */
export function domStatsRam(v: Map<string, string>): { kib: number; kind: RamKind } | null {
  const n = (k: string) => (v.has(k) ? Number(v.get(k)) : NaN);
  const available = n('balloon.available');
  const unused = n('balloon.unused');
  if (Number.isFinite(available) && Number.isFinite(unused)) {
    const caches = n('balloon.disk_caches');
    return { kib: Math.max(0, available - unused - (Number.isFinite(caches) ? caches : 0)), kind: 'balloon-used' };
  }
  if (Number.isFinite(n('balloon.rss'))) return { kib: n('balloon.rss'), kind: 'rss' };
  if (Number.isFinite(n('balloon.current'))) return { kib: n('balloon.current'), kind: 'assigned' };
  return null;
}
