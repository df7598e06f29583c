import { VM_STATE_LABELS, isActive, type VmState } from '../domain/vm.js';
import { JOB_KIND_LABELS, type JobKind } from '../domain/job.js';
import { ageSentence } from '../domain/inventory-view.js';
import { formatBytes } from '../domain/numbers.js';

/** Formatting used by the EJS views; views never compute, they only print. */
export const viewHelpers = {
  stateLabel: (s: VmState) => VM_STATE_LABELS[s],
  ageSentence,
  isActive,
  kindLabel: (k: JobKind) => JOB_KIND_LABELS[k] ?? k,
  bytes: (n: number | null | undefined): string => (n === null || n === undefined ? '—' : formatBytes(n)),
  /** A rate in bytes/s ("1.2 MiB/s"); null (not sampled) is a dash, never 0. */
  rate(n: number | null | undefined): string {
    if (n === null || n === undefined) return '—';
    return `${viewHelpers.bytes(Math.round(n))}/s`;
  },
  mib(n: number): string {
    return n >= 1024 && n % 1024 === 0 ? `${n / 1024} GiB` : `${n} MiB`;
  },
  time(iso: string | null): string {
    if (!iso) return '';
    return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  },
  /** A moment in epoch ms as the time of day in UTC ("14:03:07"), as the job timeline shows it. */
  clock(ms: number | null): string {
    if (ms === null || !Number.isFinite(ms)) return '';
    return new Date(ms).toISOString().slice(11, 19);
  },
  duration(ms: number | null): string {
    if (ms === null) return '';
    return ms < 1000 ? `${ms} ms` : ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  },
};
