import type { PlanEntry } from './types.js';

/** One VM's part in a running evacuation (or homecoming), as stored in SQLite. */
export interface MoveState {
  vm: string;
  uuid: string;
  /** The node that runs the move's job (this node when evacuating, the VM's host when going home). */
  from: string;
  to: string;
  mode: 'live' | 'offline';
  status: 'pending' | 'running' | 'moved' | 'failed' | 'not-started';
  /** The migrate job on `from` (set once started). */
  jobId: number | null;
  percent: number;
  predictedSec: number;
  message: string | null;
}

export const LINK = (m: Pick<MoveState, 'from' | 'to'>) => `${m.from}→${m.to}`;

/**
 * The moves to start now: pending ones, in plan order, while their link has fewer than
 * `perLink` running. Links are independent, so several start at once.
 */
export function nextMoves(moves: MoveState[], perLink: number): MoveState[] {
  const busy = new Map<string, number>();
  for (const m of moves) if (m.status === 'running') busy.set(LINK(m), (busy.get(LINK(m)) ?? 0) + 1);
  const out: MoveState[] = [];
  for (const m of moves) {
    if (m.status !== 'pending') continue;
    const n = busy.get(LINK(m)) ?? 0;
    if (n >= perLink) continue;
    busy.set(LINK(m), n + 1);
    out.push(m);
  }
  return out;
}

export function movesFromPlan(entries: PlanEntry[], from: string): MoveState[] {
  return entries.filter((e) => e.action === 'move').map((e) => ({
    vm: e.vm, uuid: e.uuid, from, to: e.to!, mode: e.mode ?? 'live', status: 'pending', jobId: null, percent: 0, predictedSec: e.predictedSec, message: null,
  }));
}

export const isOver = (m: MoveState) => m.status === 'moved' || m.status === 'failed' || m.status === 'not-started';

/** Seconds still to go: what is left of each running move plus the pending ones, per link in parallel. */
export function remainingSec(moves: MoveState[], perLink: number): number {
  const byLink = new Map<string, number>();
  for (const m of moves) {
    if (isOver(m)) continue;
    const left = m.status === 'running' ? m.predictedSec * (1 - Math.min(100, m.percent) / 100) : m.predictedSec;
    byLink.set(LINK(m), (byLink.get(LINK(m)) ?? 0) + left);
  }
  return Math.max(0, ...[...byLink.values()].map((s) => s / Math.max(1, perLink)));
}

export interface MoveSummary {
  moved: string[];
  failed: { vm: string; reason: string }[];
  notStarted: string[];
}

export function summarize(moves: MoveState[]): MoveSummary {
  return {
    moved: moves.filter((m) => m.status === 'moved').map((m) => m.vm),
    failed: moves.filter((m) => m.status === 'failed').map((m) => ({ vm: m.vm, reason: m.message ?? 'failed' })),
    notStarted: moves.filter((m) => m.status === 'not-started' || m.status === 'pending').map((m) => m.vm),
  };
}

/** The one-line outcome the page and the job show. */
export function summarySentence(kind: 'evacuation' | 'homecoming', s: MoveSummary, stayed: number): string {
  const parts = [`${s.moved.length} moved`, `${s.failed.length} failed`];
  if (s.notStarted.length) parts.push(`${s.notStarted.length} not started`);
  if (kind === 'evacuation') parts.push(`${stayed} stayed`);
  const failed = s.failed.length ? ` Failed: ${s.failed.map((f) => `${f.vm} (${f.reason})`).join('; ')}` : '';
  return `${kind === 'evacuation' ? 'Evacuation' : 'Homecoming'} finished: ${parts.join(', ')}.${failed}`;
}
