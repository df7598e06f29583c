/**
 * bench/evacuate: four idle guests (128 MiB) on lab-a evacuated to lab-b and lab-c by the
 * maintenance plan (one move per link, two links in parallel), then brought home, then the
 * same four migrated one by one by the migration API in the same run. Needs root and the
 * test guest (KFLAB_INSTANCE picks the lab).
 *
 * Last line: vms evacuate_wall_s sum_single_s evacuate_ratio unplaced predicted_s
 * Targets: evacuate_ratio ≤ 1.1 with one move per link (lower with two links working), unplaced=0.
 */
import { http, inNode, lab, labNodes } from '../test/helpers/lab.js';

const [A, B, C] = labNodes(3) as [ReturnType<typeof labNodes>[0], ReturnType<typeof labNodes>[0], ReturnType<typeof labNodes>[0]];
const VMS = ['ev-1', 'ev-2', 'ev-3', 'ev-4'];
const say = (s: string) => process.stdout.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, ms: number, probe: () => Promise<T | null>): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await probe();
    if (v) return v;
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function main() {
  lab('down');
  lab('up', '3', '--with-manager');
  try {
    for (const vm of VMS) {
      inNode(A.name, 'cp', '/var/cache/kvm-ferry/guest/guest.qcow2', `/var/lib/kvm-ferry/images/${vm}.qcow2`);
      const r = await http(A.url, 'POST', `/api/nodes/${A.name}/vms?wait=120`, { name: vm, vcpus: 1, memoryMiB: 128, source: 'import', image: `${vm}.qcow2` });
      if (r.json.job?.state !== 'ok') throw new Error(`create ${vm}: ${JSON.stringify(r.json)}`);
    }
    await sleep(10_000);

    const planned = (await http(A.url, 'POST', `/api/nodes/${A.name}/maintenance/plan`, {})).json.plan;
    const unplaced = planned.entries.filter((e: { action: string }) => e.action !== 'move').length;
    say(`plan: ${planned.entries.map((e: { vm: string; action: string; to: string | null; predictedSec: number }) => `${e.vm}→${e.to ?? e.action} (${e.predictedSec.toFixed(1)} s)`).join(', ')}; eta ${planned.etaSec.toFixed(1)} s`);

    const t0 = Date.now();
    const start = await http(A.url, 'POST', `/api/nodes/${A.name}/maintenance/start`, {});
    if (start.status !== 202) throw new Error(`start: ${JSON.stringify(start.json)}`);
    say(`start (placement again from fresh room facts) answered after ${((Date.now() - t0) / 1000).toFixed(2)} s`);
    const done = await until('the evacuation', 600_000, async () => {
      const s = (await http(A.url, 'GET', `/api/nodes/${A.name}/maintenance`)).json;
      return s.state === 'maintenance' ? s : null;
    });
    const evacuateWallS = (Date.now() - t0) / 1000;
    say(`evacuation: ${evacuateWallS.toFixed(2)} s — ${done.summary}`);
    for (const m of done.moves as { vm: string; to: string; jobId: number }[]) {
      const j = (await http(A.url, 'GET', `/api/jobs/${m.jobId}`)).json;
      say(`  ${m.vm} → ${m.to}: job #${j.id} from +${((Date.parse(j.startedAt) - t0) / 1000).toFixed(2)} s for ${(j.durationMs / 1000).toFixed(2)} s`);
    }

    const t1 = Date.now();
    const end = await http(A.url, 'POST', `/api/nodes/${A.name}/maintenance/end?wait=600`, {});
    if (end.json.job?.state !== 'ok') throw new Error(`end: ${JSON.stringify(end.json)}`);
    say(`homecoming: ${((Date.now() - t1) / 1000).toFixed(2)} s — ${end.json.job.message}`);

    let sumSingleS = 0;
    for (const [i, vm] of VMS.entries()) {
      const to = i % 2 ? C.name : B.name;
      const t = Date.now();
      const r = await http(A.url, 'POST', `/api/nodes/${A.name}/vms/${vm}/migrate?wait=600`, { to });
      if (r.json.job?.state !== 'ok') throw new Error(`single ${vm}: ${JSON.stringify(r.json)}`);
      const s = (Date.now() - t) / 1000;
      sumSingleS += s;
      say(`single: ${vm} → ${to} ${s.toFixed(2)} s`);
    }
    const f = (n: number, d = 3) => n.toFixed(d);
    say(`vms=${VMS.length} evacuate_wall_s=${f(evacuateWallS, 2)} sum_single_s=${f(sumSingleS, 2)} evacuate_ratio=${f(evacuateWallS / sumSingleS)} unplaced=${unplaced} predicted_s=${f(planned.etaSec, 1)}`);
  } finally {
    lab('down');
  }
}

main().catch((e) => {
  process.stderr.write(`bench/evacuate failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
