/** What a maintenance plan needs to know of one VM on the node being emptied. */
export interface VmToPlace {
  name: string;
  uuid: string;
  /** Running (moves live) or shut off (moves offline or stays, the admin's choice). */
  running: boolean;
  memoryMiB: number;
  /** What the move copies: the allocated bytes of the disks and carried files. */
  diskAllocatedBytes: number;
}

/** A node that may take VMs, as its own manager reports it. */
export interface PeerRoom {
  name: string;
  /** Null when the node cannot take VMs now (unreachable, in maintenance…), else why not. */
  unavailable: string | null;
  /** RAM it can give to new VMs: free + cache − its reserved memory (config). */
  freeMemoryMiB: number;
  /** Free bytes in its image directory. */
  freeDiskBytes: number;
  /** Link speed to it, bytes per second (measured on the last move, else assumed). */
  linkBytesPerSec: number;
}

export type ShutOffPolicy = 'stay' | 'offline';

export interface PlanRequest {
  vms: VmToPlace[];
  peers: PeerRoom[];
  shutOff: ShutOffPolicy;
  /** Admin's adjustments: a destination for a VM, or "exclude" to leave it where it is. */
  overrides: Record<string, string>;
  /** Refusals of the migration pre-flight, per VM and destination: that pair is never planned. */
  refused: Record<string, Record<string, string>>;
  memoryMarginMiB: number;
  diskMarginBytes: number;
}

export type PlanAction = 'move' | 'stay' | 'cannot';

export interface PlanEntry {
  vm: string;
  uuid: string;
  action: PlanAction;
  /** Destination for "move"; null otherwise. */
  to: string | null;
  mode: 'live' | 'offline' | null;
  memoryMiB: number;
  /** Bytes the move sends: disks plus RAM for a live move. */
  bytesToMove: number;
  predictedSec: number;
  /** Why it stays or cannot move; for "move", why there (one sentence). */
  reason: string;
}

export interface EvacuationPlan {
  entries: PlanEntry[];
  /** Predicted wall time with maxParallelPerLink moves per link, links in parallel. */
  etaSec: number;
}
