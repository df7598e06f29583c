import { badInput } from '../../errors.js';
import { requireChoice } from '../../domain/numbers.js';
import type { ShutOffPolicy } from '../../domain/maintenance/types.js';

export interface PlanAsk {
  shutOff: ShutOffPolicy;
  /** VM name → destination node or "exclude". */
  overrides: Record<string, string>;
}

const MAX_OVERRIDES = 500;

/**
 * The admin's adjustments, from JSON ({overrides: {vm: node|"exclude"}}) or the page's
 * form (fields "to:<vm>"); "" or "auto" leaves the choice to the planner. Every name is
 * checked against this node's VMs and every destination against its peers.
 */
export function parsePlanAsk(body: Record<string, unknown>, vms: string[], peers: string[]): PlanAsk {
  const shutOff = requireChoice('shutOff', body.shutOff, ['stay', 'offline'] as const, 'stay');
  const raw: Record<string, unknown> = {};
  if (body.overrides !== undefined) {
    if (typeof body.overrides !== 'object' || body.overrides === null || Array.isArray(body.overrides)) throw badInput('overrides', 'overrides must be an object of VM name → node name or "exclude".');
    Object.assign(raw, body.overrides);
  }
  for (const [k, v] of Object.entries(body)) if (k.startsWith('to:')) raw[k.slice(3)] = v;
  if (Object.keys(raw).length > MAX_OVERRIDES) throw badInput('overrides', `At most ${MAX_OVERRIDES} adjustments.`);
  const overrides: Record<string, string> = {};
  for (const [vm, v] of Object.entries(raw)) {
    if (!vms.includes(vm)) throw badInput('overrides', `There is no VM named ${vm.slice(0, 80)} on this node.`);
    if (v === '' || v === 'auto' || v === undefined || v === null) continue;
    if (typeof v !== 'string' || (v !== 'exclude' && !peers.includes(v))) throw badInput('overrides', `The destination of ${vm} must be a peer node (${peers.join(', ') || 'none'}), "auto" or "exclude".`);
    overrides[vm] = v;
  }
  return { shutOff, overrides };
}
