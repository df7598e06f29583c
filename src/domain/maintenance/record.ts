import type { EvacuationPlan, ShutOffPolicy } from './types.js';
import type { MoveState } from './run-state.js';

/**
 * normal → evacuating (moves run) → maintenance (emptied; the node refuses new VMs, starts
 * and incoming migrations) → returning (VMs brought home; it takes migrations again) → normal.
 */
export type MaintenanceState = 'normal' | 'evacuating' | 'maintenance' | 'returning';

export interface StoredPlan extends EvacuationPlan {
  shutOff: ShutOffPolicy;
  overrides: Record<string, string>;
  /** What pre-flight refused, per VM and node, when the plan was made. */
  refused: Record<string, Record<string, string>>;
  madeAt: string;
}

export interface MaintenanceRecord {
  node: string;
  state: MaintenanceState;
  since: string | null;
  plan: StoredPlan | null;
  moves: MoveState[];
  /** The maintenance job that runs (or ran) the moves. */
  jobId: number | null;
  summary: string | null;
}

export interface VmHome {
  uuid: string;
  vm: string;
  home: string;
  awayOn: string;
  movedAt: string;
}

/** The node refuses new VMs, starts and incoming migrations in these states. */
export const refusesWork = (s: MaintenanceState) => s === 'evacuating' || s === 'maintenance';
