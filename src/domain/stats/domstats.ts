import type { RamKind } from './sample.js';

/** A domain's statistics by name: text from `virsh domstats --raw`, or numbers from libvirt's typed parameters. */
export interface StatValues {
  get(key: string): string | number | undefined;
  has(key: string): boolean;
}

/** One domain's block of `virsh domstats --raw` output: "Domain: 'name'" then "  key=value" lines. */
export interface DomStats {
  name: string;
  values: StatValues;
}

/**
 * One pass with indexOf, no regular expression per line: on a real libvirtd a tick's answer
 * is ~40 lines per VM, and this parse was a measurable part of the tick (bench/stats.ts).
 */
export function parseDomStats(text: string): DomStats[] {
  const out: DomStats[] = [];
  let cur: Map<string, string> | null = null;
  let at = 0;
  const n = text.length;
  while (at < n) {
    let end = text.indexOf('\n', at);
    if (end < 0) end = n;
    if (text.startsWith("Domain: '", at)) {
      let close = end;
      while (close > at && text.charCodeAt(close - 1) <= 32) close--;
      if (text.charCodeAt(close - 1) === 39 /* ' */ && close - 1 >= at + 9) {
        cur = new Map();
        out.push({ name: text.slice(at + 9, close - 1), values: cur });
      }
    } else if (cur && (text.charCodeAt(at) === 32 || text.charCodeAt(at) === 9)) {
      let k = at;
      while (k < end && (text.charCodeAt(k) === 32 || text.charCodeAt(k) === 9)) k++;
      const eq = text.indexOf('=', k);
      if (eq > k && eq < end && KEY.test(text.slice(k, eq))) cur.set(text.slice(k, eq), text.slice(eq + 1, end));
    }
    at = end + 1;
  }
  return out;
}

const KEY = /^[A-Za-z0-9_.-]+$/;

/**
 * RAM from balloon statistics, honestly labelled: `balloon.current` is only what the VM was
 * given; "used" needs the guest's own figures (available − unused − disk caches), which appear
 * once a stats period is set and the guest has a balloon driver. Falls back to `balloon.rss`
 * (QEMU's resident memory, when reported) and only then to the assigned size.
 */
export function domStatsRam(v: StatValues): { kib: number; kind: RamKind } | null {
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
