import type { Db } from './database.js';
import type { MaintenanceRecord, MaintenanceState, VmHome } from '../../domain/maintenance/record.js';
import type { MoveState } from '../../domain/maintenance/run-state.js';

interface Row {
  node: string;
  state: string;
  since_ms: number;
  plan: string | null;
  moves: string;
  job_id: number | null;
  summary: string | null;
}

/** The maintenance marker, its plan and moves, and where moved VMs came from: all in SQLite, so a restart keeps them. */
export class MaintenanceRepository {
  constructor(private readonly db: Db, private readonly now: () => number = Date.now) {}

  get(node: string): MaintenanceRecord {
    const r = this.db.prepare('SELECT * FROM maintenance WHERE node = ?').get(node) as Row | undefined;
    if (!r) return { node, state: 'normal', since: null, plan: null, moves: [], jobId: null, summary: null };
    return {
      node, state: r.state as MaintenanceState, since: new Date(r.since_ms).toISOString(),
      plan: r.plan === null ? null : JSON.parse(r.plan), moves: JSON.parse(r.moves) as MoveState[], jobId: r.job_id, summary: r.summary,
    };
  }

  /** Sets the state (and, when given, the plan, moves and job); `since` changes only with the state. */
  setState(node: string, state: MaintenanceState, fields: { plan?: unknown; moves?: MoveState[]; jobId?: number | null; summary?: string | null } = {}): void {
    const cur = this.get(node);
    const since = cur.state === state && cur.since ? Date.parse(cur.since) : this.now();
    this.db.prepare(`INSERT INTO maintenance (node, state, since_ms, plan, moves, job_id, summary) VALUES (?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT(node) DO UPDATE SET state = excluded.state, since_ms = excluded.since_ms, plan = excluded.plan, moves = excluded.moves, job_id = excluded.job_id, summary = excluded.summary`)
      .run(node, state, since,
        JSON.stringify('plan' in fields ? fields.plan : cur.plan),
        JSON.stringify(fields.moves ?? cur.moves),
        'jobId' in fields ? fields.jobId : cur.jobId,
        'summary' in fields ? fields.summary : cur.summary);
  }

  /** Only the job: the run may already have moved the state on (a run with nothing to move ends at once). */
  setJobId(node: string, jobId: number): void {
    this.db.prepare('UPDATE maintenance SET job_id = ? WHERE node = ?').run(jobId, node);
  }

  setMoves(node: string, moves: MoveState[]): void {
    this.db.prepare('UPDATE maintenance SET moves = ? WHERE node = ?').run(JSON.stringify(moves), node);
  }

  setHome(h: Omit<VmHome, 'movedAt'>): void {
    this.db.prepare(`INSERT INTO vm_homes (uuid, vm, home, away_on, moved_at_ms) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT(uuid) DO UPDATE SET vm = excluded.vm, home = excluded.home, away_on = excluded.away_on, moved_at_ms = excluded.moved_at_ms`)
      .run(h.uuid, h.vm, h.home, h.awayOn, this.now());
  }

  forgetHome(uuid: string): void {
    this.db.prepare('DELETE FROM vm_homes WHERE uuid = ?').run(uuid);
  }

  awayFrom(home: string): VmHome[] {
    const rows = this.db.prepare('SELECT * FROM vm_homes WHERE home = ? ORDER BY moved_at_ms, vm').all(home) as { uuid: string; vm: string; home: string; away_on: string; moved_at_ms: number }[];
    return rows.map((r) => ({ uuid: r.uuid, vm: r.vm, home: r.home, awayOn: r.away_on, movedAt: new Date(r.moved_at_ms).toISOString() }));
  }
}
