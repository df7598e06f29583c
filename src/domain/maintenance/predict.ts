/**
 * Predicted time of one move: what it sends (disk allocation, plus RAM when live) over
 * the link. One small pure function on purpose: a convergence model (dirty-page rate)
 * can replace it without touching the planner or the runner.
 */
export function predictMoveSeconds(input: { diskAllocatedBytes: number; memoryBytes: number; live: boolean; linkBytesPerSec: number }): number {
  const bytes = input.diskAllocatedBytes + (input.live ? input.memoryBytes : 0);
  if (input.linkBytesPerSec <= 0) return Number.POSITIVE_INFINITY;
  // Fixed cost seen on every move (pre-flight over SSH, define, verify): a few seconds.
  return FIXED_SEC + bytes / input.linkBytesPerSec;
}

export const FIXED_SEC = 5;

/** Bytes a move sends, for the plan's "data to move" column. */
export function bytesToMove(diskAllocatedBytes: number, memoryBytes: number, live: boolean): number {
  return diskAllocatedBytes + (live ? memoryBytes : 0);
}

/**
 * Wall time of a set of moves when each link runs `perLink` at a time and links run in
 * parallel: per link, its moves packed into `perLink` lanes (longest first), the longest
 * lane of the busiest link wins.
 */
export function scheduleEtaSec(moves: { link: string; seconds: number }[], perLink: number): number {
  const byLink = new Map<string, number[]>();
  for (const m of moves) byLink.set(m.link, [...(byLink.get(m.link) ?? []), m.seconds]);
  let eta = 0;
  for (const secs of byLink.values()) {
    const lanes = new Array<number>(Math.max(1, perLink)).fill(0);
    for (const s of [...secs].sort((a, b) => b - a)) {
      const i = lanes.indexOf(Math.min(...lanes));
      lanes[i] = lanes[i]! + s;
    }
    eta = Math.max(eta, ...lanes);
  }
  return eta;
}
