export const JOB_KINDS = ['create', 'start', 'shutdown', 'poweroff', 'delete', 'migrate', 'cleanup', 'maintenance'] as const;
export type JobKind = (typeof JOB_KINDS)[number];
export type JobState = 'running' | 'ok' | 'failed';

/** One row per action: what was asked, by whom, and what really happened. */
export interface Job {
  id: number;
  kind: JobKind;
  node: string;
  vm: string | null;
  user: string | null;
  state: JobState;
  startedAt: string;
  endedAt: string | null;
  durationMs: number | null;
  message: string | null;
  detail: string | null;
  params: Record<string, unknown>;
  progress: Record<string, unknown> | null;
  result: Record<string, unknown> | null;
}

export const JOB_KIND_LABELS: Record<JobKind, string> = {
  create: 'Create',
  start: 'Start',
  shutdown: 'Shut down',
  poweroff: 'Force off',
  delete: 'Delete',
  migrate: 'Migrate',
  cleanup: 'Clean up after a migration',
  maintenance: 'Maintenance (evacuate or bring home)',
};
