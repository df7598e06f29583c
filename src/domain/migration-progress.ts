/** One progress sample of a migration job, in the units the page shows. */
export interface MigrationProgress {
  /** 0–100, from processed / total data (memory + disk). */
  percent: number;
  dataTotalBytes: number;
  dataProcessedBytes: number;
  dataRemainingBytes: number;
  memoryTotalBytes: number | null;
  memoryProcessedBytes: number | null;
  diskTotalBytes: number | null;
  diskProcessedBytes: number | null;
  /** Bytes per second, memory and disk streams added. */
  speedBps: number | null;
  etaSec: number | null;
  elapsedMs: number | null;
  /** Only in the completed job's statistics. */
  downtimeMs: number | null;
}

const num = (raw: Record<string, string>, key: string): number | null => {
  const v = raw[key];
  if (v === undefined || !/^\d+(\.\d+)?$/.test(v.trim())) return null;
  return Number(v.trim());
};

/**
 * Parses `virsh domjobinfo --rawstats` ("Job type: N" then "name: value" lines with
 * libvirt's typed-parameter names). Returns null when no job is running (type 0) or
 * the job carries no data counters yet.
 */
export function parseDomJobInfoRaw(text: string): MigrationProgress | null {
  const raw: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_. ]*?)\s*:\s*(.*?)\s*$/.exec(line);
    if (m) raw[m[1]!.toLowerCase()] = m[2]!;
  }
  const type = raw['job type'];
  if (type === undefined || type === '0' || /^none$/i.test(type)) return null;
  const total = num(raw, 'data_total');
  const processed = num(raw, 'data_processed');
  if (total === null || processed === null) return null;
  const remaining = num(raw, 'data_remaining') ?? Math.max(0, total - processed);
  const memBps = num(raw, 'memory_bps');
  const diskBps = num(raw, 'disk_bps');
  const speed = memBps === null && diskBps === null ? null : (memBps ?? 0) + (diskBps ?? 0);
  return {
    percent: total > 0 ? Math.min(100, Math.round((1000 * processed) / total) / 10) : 0,
    dataTotalBytes: total,
    dataProcessedBytes: processed,
    dataRemainingBytes: remaining,
    memoryTotalBytes: num(raw, 'memory_total'),
    memoryProcessedBytes: num(raw, 'memory_processed'),
    diskTotalBytes: num(raw, 'disk_total'),
    diskProcessedBytes: num(raw, 'disk_processed'),
    speedBps: speed,
    etaSec: speed && speed > 0 ? Math.round(remaining / speed) : null,
    elapsedMs: num(raw, 'time_elapsed'),
    downtimeMs: num(raw, 'downtime'),
  };
}
