/**
 * The vocabulary of a migration plan: what a migration does with every element of a
 * domain that refers to storage or host state. Pure data; built by `buildMigrationPlan`.
 */

export type MigrationMode = 'live' | 'offline';

/**
 * - copy:       this VM's own writable local file (qcow2/raw). Live: NBD mirror into a
 *               sparse file pre-created on the destination. Offline: sparse SHA-256-checked copy.
 * - copy-first: a read-only local file disk in a live move: it cannot change, so it is
 *               copied (sparse, SHA-256 checked) before the live move starts.
 * - carry:      a file copied byte-identical to the same path and kept on the source too
 *               (offline NVRAM / TPM state is removed from the source after success; an ISO
 *               copied on request never is).
 * - stream:     state QEMU carries inside the live migration stream (UEFI variables, swtpm);
 *               verified present on the destination afterwards.
 * - present:    must exist identically on the destination (same path, size, SHA-256) and does.
 * - shared:     network disk or shared pool volume: the destination reaches it; never created
 *               or deleted by kvm-ferry.
 * - eject:      removable media ejected for the move (on request); the tray is empty there.
 * - as-is:      nothing to move (empty tray, user-mode network, a log file libvirt reopens).
 * - refuse:     the migration cannot go ahead; `fix` says what the admin can do.
 */
export type PlanDecision = 'copy' | 'copy-first' | 'carry' | 'stream' | 'present' | 'shared' | 'eject' | 'as-is' | 'refuse';

/** Fixes the admin can ask for in the request instead of changing the VM by hand. */
export type PlanFixId = 'ejectMedia' | 'copyMedia';

export interface PlanItem {
  /** Stable id: disk:<target>, cdrom:<target>, floppy:<target>, loader, nvram, kernel, initrd, dtb,
   *  tpm:<n>, hostdev:<n>, interface:<n>, filesystem:<n>, serial:<n>, snapshots, checkpoints. */
  id: string;
  /** What it is, for people: "disk vdb /var/lib/libvirt/images/data.raw (raw, read-only)". */
  element: string;
  decision: PlanDecision;
  /** The host path this item is about, when it has one. */
  path: string | null;
  /** Disk target dev (vda, sdb…) for disks, CD-ROMs and floppies. */
  target: string | null;
  /** Disk image format for copy / copy-first items. */
  format: string | null;
  /** One sentence: why this decision. */
  reason: string;
  /** For refusals (and media that can be fixed): what to do, one sentence. */
  fix: string | null;
  /** Request flags that would turn this refusal into a go. */
  fixes: PlanFixId[];
  /** Bytes this item puts on the wire (allocation for copies, file size for carries), else 0. */
  bytes: number;
}

export interface MigrationPlan {
  mode: MigrationMode;
  go: boolean;
  items: PlanItem[];
}

/** A host file as seen on one node: enough to decide "identical" without reading it twice. */
export interface FileFact {
  /** file: regular file; block: block device; dir; missing: nothing at the path. */
  kind: 'file' | 'block' | 'dir' | 'missing';
  sizeBytes?: number;
  /** Hex SHA-256, when it was worth computing (read-only media, firmware, kernels). */
  sha256?: string;
}

/** What qemu-img says about a local disk image on the source. */
export interface ImageFact {
  format: string;
  virtualBytes: number;
  allocatedBytes: number;
  /** Apparent file size: what an offline copy reads. */
  fileBytes: number;
  backingFile: string | null;
}

export interface SourceFacts {
  files: Record<string, FileFact>;
  images: Record<string, ImageFact>;
  /** Other domains of this node that use the same path (never deleted after a move). */
  otherUsers: Record<string, string[]>;
  snapshots: number;
  checkpoints: number;
  /** Storage pools this node defines, by name, with libvirt's pool type (dir, rbd, iscsi, netfs…). */
  pools: Record<string, { type: string }>;
  /** Files under /var/lib/libvirt/swtpm/<uuid>/ (an emulated TPM's state), relative to nothing: absolute paths. */
  tpmStateFiles: string[];
}

export interface DestFacts {
  files: Record<string, FileFact>;
  /** Host names of network disks and whether the destination resolves them. */
  resolvable: Record<string, boolean>;
  /** Storage pools on the destination: active or not, with their volume names. */
  pools: Record<string, { active: boolean; volumes: string[] }>;
  /** Names of the destination's active libvirt networks. */
  networks: string[];
  /** Names of the destination's network interfaces (bridges, NICs for macvtap). */
  interfaces: string[];
  /** UUIDs of the libvirt secrets defined on the destination (cephx / iSCSI CHAP keys). */
  secrets?: string[];
}

export interface PlanOptions {
  /** Eject removable media the destination lacks, for the move. */
  ejectMedia: boolean;
  /** Copy removable media the destination lacks to the same path there (kept on both sides). */
  copyMedia: boolean;
}
