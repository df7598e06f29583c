import type { Job } from '../domain/job.js';
import { jobChecks, jobPercent, jobTrail, migrationResultWords, type CheckLine } from '../domain/job-report.js';
import { timeline, type TimelineRow, type TrailSample } from '../domain/job-trail.js';

/** Everything the job page prints, decided here so the view only prints. */
export interface JobView {
  percent: number;
  timeline: TimelineRow[];
  checks: CheckLine[];
  resultWords: string[];
  samples: TrailSample[];
  /** Pretty JSON for the "Details" element. */
  raw: { params: string; result: string | null };
}

export function jobView(job: Job): JobView {
  const trail = jobTrail(job);
  const { trail: _t, ...result } = job.result ?? {};
  return {
    percent: jobPercent(job),
    timeline: timeline(trail),
    checks: jobChecks(job),
    resultWords: migrationResultWords(job),
    samples: trail?.samples ?? [],
    raw: { params: JSON.stringify(job.params, null, 2), result: job.result ? JSON.stringify(result, null, 2) : null },
  };
}
