/** libvirt's virDomainState numbers become one string union with one label table. */
export const VM_STATES = ['no-state', 'running', 'blocked', 'paused', 'shutting-down', 'shut-off', 'crashed', 'suspended'] as const;
export type VmState = (typeof VM_STATES)[number];

export const VM_STATE_LABELS: Record<VmState, string> = {
  'no-state': 'Unknown',
  running: 'Running',
  blocked: 'Running (blocked)',
  paused: 'Paused',
  'shutting-down': 'Shutting down',
  'shut-off': 'Shut off',
  crashed: 'Crashed',
  suspended: 'Suspended (guest)',
};

export function vmStateFromLibvirt(code: number): VmState {
  return VM_STATES[code] ?? 'no-state';
}

/** States in which QEMU is alive and the VM counts as "on" for start/delete decisions. */
export function isActive(state: VmState): boolean {
  return state === 'running' || state === 'blocked' || state === 'paused' || state === 'shutting-down' || state === 'suspended';
}

export interface VmDisk {
  target: string;
  device: 'disk' | 'cdrom' | 'floppy' | 'lun';
  /** libvirt's source type: "file", "block", "network"… */
  type: string;
  path: string | null;
  format: string | null;
  readonly: boolean;
  virtualBytes: number | null;
  allocatedBytes: number | null;
}

export interface Vm {
  name: string;
  uuid: string;
  state: VmState;
  vcpus: number;
  memoryMiB: number;
  maxMemoryMiB: number;
  vncPort: number | null;
  vncListen: string | null;
  disks: VmDisk[];
  autostart: boolean | null;
  osVariant: string | null;
}
