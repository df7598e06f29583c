import { describeError } from '../../errors.js';
import type { MaintenanceState } from '../../domain/maintenance/record.js';
import type { PeerNode } from '../migration/peer-nodes.js';
import type { NodeRoom } from './room.js';

/** GET /api/nodes/:node/maintenance as a peer answers it (the parts other nodes read). */
export interface PeerMaintenance {
  state: MaintenanceState;
  room: NodeRoom | null;
}

const ASK_TIMEOUT_MS = 6_000;

export async function askPeerMaintenance(peer: PeerNode): Promise<PeerMaintenance> {
  const blocked = await peer.blockedReason();
  if (blocked) throw new Error(blocked);
  return peer.remote.call<PeerMaintenance>('GET', `/api/nodes/${encodeURIComponent(peer.name)}/maintenance`, undefined, null, ASK_TIMEOUT_MS);
}

/**
 * Pre-flight of a migration to `peer`: its own manager says whether it is in maintenance.
 * A peer whose manager cannot be asked is not refused for it (libvirt may still take the VM);
 * the check says it could not tell.
 */
export async function incomingRefusal(peer: PeerNode): Promise<{ ok: boolean; message: string }> {
  try {
    const m = await askPeerMaintenance(peer);
    if (m.state === 'evacuating' || m.state === 'maintenance') {
      return { ok: false, message: `Node ${peer.name} is in maintenance; it takes no incoming migrations until its maintenance ends.` };
    }
    return { ok: true, message: `Node ${peer.name} is not in maintenance.` };
  } catch (e) {
    return { ok: true, message: `Could not ask node ${peer.name}'s kvm-ferry whether it is in maintenance (${describeError(e)}).` };
  }
}
