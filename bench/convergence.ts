/**
 * bench/convergence (issue 12): in one lab run, side by side —
 *   a busy guest (ferry_dirty=64, 256 MiB RAM) over a link shaped so that pre-copy cannot
 *   converge (rate picked from the guest's measured dirty rate, printed), moved by
 *     1. plain `virsh migrate --live --copy-storage-all` with a 180 s cap (then aborted),
 *     2. kvm-ferry `safe` without delta compression (XBZRLE) and `safe` as it runs by default (with it),
 *     3. kvm-ferry `fast-finish` (post-copy; XBZRLE off so that post-copy is what is measured);
 *   an idle guest moved by kvm-ferry `safe` and by the plain virsh command (same link).
 * Each busy move prints whether the guest still counts afterwards: on the lab busy TCG guests
 * moved over a shaped link were seen to oops on the destination (see the convergence e2e test).
 * Post-copy needs vm.unprivileged_userfaultfd=1 on both nodes (a host-wide sysctl here: the
 * lab's nodes share the kernel); the bench sets it for the fast-finish run and restores the
 * old value at once, also on failure.
 *
 * Last line: plain_done plain_s safe_done safe_s safe_downtime_ms postcopy_done postcopy_s
 *            postcopy_downtime_ms predicted_safe_s idle_wall_ratio small_safe_done small_safe_s
 *            small_safe_downtime_ms safe_xbzrle_pages safe_noxbzrle_done
 * Targets: safe_done=1 with safe_s ≤ 120 and safe_downtime_ms ≤ 500; postcopy_downtime_ms ≤ 300;
 * predicted_safe_s within ±30 % of safe_s; idle_wall_ratio ≤ 1.1.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { http, inNode, lab, LAB_SCRIPT, labNodes, meshLibvirtUri, type LabNode } from '../test/helpers/lab.js';
import { domains } from '../test/helpers/lab-vm-shapes.js';
import { counterOf, QEMU10, stageBusyGuest, startBusyVm } from '../test/helpers/lab-busy-guest.js';

const [A, B] = labNodes(2) as [LabNode, LabNode];
// Every guest runs on QEMU 10 (bookworm-backports, scripts/install-qemu-backports.sh): on
// Debian 12's QEMU 7.2 kvm-ferry pauses an emulated guest for its whole copy (a live copy
// loses its writes there), so the pre-copy policies would not be what is measured.
const BUSY = { name: 'bench-busy', memoryMiB: 256, dirtyMiB: 64, emulator: QEMU10 };
const IDLE = { name: 'bench-idle', memoryMiB: 256, emulator: QEMU10 };
// A small working set (3 MiB), which safe's downtime steps can cover on the same link.
const SMALL = { name: 'bench-small', memoryMiB: 160, dirtyMiB: 3, emulator: QEMU10 };
const PLAIN_CAP_S = 180;
const UFFD = '/proc/sys/vm/unprivileged_userfaultfd';
const say = (s: string) => process.stdout.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, ms: number, probe: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(500);
  }
}

const where = (vm: string): [LabNode, LabNode] => (domains(A.name).includes(vm) ? [A, B] : [B, A]);

/** Plain virsh from the VM's node to the other (encrypted, like the lab's kvm-ferry); aborted after capS. */
async function plainVirsh(vm: string, capS: number): Promise<{ done: boolean; s: number; out: string }> {
  const [from, to] = where(vm);
  const destUri = meshLibvirtUri(from, to);
  const args = ['exec', from.name, 'virsh', '-c', 'qemu:///system', 'migrate', '--live', '--copy-storage-all', '--persistent', '--undefinesource', '--tls',
    '--migrateuri', `tcp://${to.addr}`, '--disks-uri', `tcp://${to.addr}`, '--listen-address', to.addr, '--domain', vm, '--desturi', destUri];
  const t0 = Date.now();
  const child = spawn('bash', [LAB_SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exit = new Promise<number>((r) => child.on('exit', (c) => r(c ?? 1)));
  const capped = sleep(capS * 1000).then(() => 'cap' as const);
  const first = await Promise.race([exit, capped]);
  if (first === 'cap') {
    const s = (Date.now() - t0) / 1000;
    inNode(from.name, 'virsh', '-c', 'qemu:///system', 'domjobabort', vm);
    await exit;
    return { done: false, s, out: out.trim() };
  }
  return { done: first === 0, s: (Date.now() - t0) / 1000, out: out.trim() };
}

/** Whether the guest still counts where it runs now (a move that corrupted it would not), within 20 s. */
async function alive(vm: string): Promise<boolean> {
  const [at] = where(vm);
  const c0 = counterOf(at.name, vm);
  const end = Date.now() + 20_000;
  while (Date.now() < end) {
    if (counterOf(at.name, vm) > c0 + 1) return true;
    await sleep(1000);
  }
  return false;
}

async function ferry(vm: string, policy: string, extra: Record<string, unknown> = {}): Promise<{ job: any; check: any }> {
  const [from, to] = where(vm);
  const body = { to: to.name, mode: 'live', policy, ...extra };
  const check = (await http(from.url, 'POST', `/api/nodes/${from.name}/vms/${vm}/migrate/check`, body)).json;
  if (!check.go) throw new Error(`${policy} pre-flight of ${vm} says no: ${JSON.stringify(check.checks.filter((c: any) => !c.ok))}`);
  const r = await http(from.url, 'POST', `/api/nodes/${from.name}/vms/${vm}/migrate?wait=600`, body);
  return { job: r.json.job, check };
}

async function main() {
  lab('down');
  lab('up', '2', '--with-manager');
  const uffdBefore = readFileSync(UFFD, 'utf8').trim();
  try {
    stageBusyGuest([A, B]);
    startBusyVm(A.name, BUSY);
    startBusyVm(A.name, IDLE);
    await waitFor('both guests to count', 180_000, () => counterOf(A.name, BUSY.name) >= 5 && counterOf(A.name, IDLE.name) >= 5);

    // The dirty rate as kvm-ferry's pre-flight measures it (unshaped link), and a link a
    // quarter of it: plain pre-copy resends the working set forever.
    const pre = (await http(A.url, 'POST', `/api/nodes/${A.name}/vms/${BUSY.name}/migrate/check`, { to: B.name, mode: 'live' })).json;
    const m = pre.prediction;
    if (!m) throw new Error(`the pre-flight made no prediction: ${JSON.stringify(pre.predictionProblems ?? pre)}`);
    const dirtyMBps = m.dirtyBps / 1e6;
    const mbit = Math.max(8, Math.min(200, Math.floor((m.dirtyBps * 8) / 4 / 1e6)));
    say(`busy guest dirties ${dirtyMBps.toFixed(1)} MB/s (64 MiB working set, TCG); link shaped to ${mbit} mbit/s (${(mbit / 8).toFixed(2)} MB/s) each way`);
    lab('shape', A.name, `${mbit}mbit`);
    lab('shape', B.name, `${mbit}mbit`);

    const plain = await plainVirsh(BUSY.name, PLAIN_CAP_S);
    say(`plain virsh (busy): ${plain.done ? 'done' : 'not done'} after ${plain.s.toFixed(1)} s${plain.done ? '' : ' (aborted at the cap)'}`);
    await waitFor('the busy guest to run after the plain attempt', 60_000, () => domains(A.name).concat(domains(B.name)).includes(BUSY.name));

    // Safe without delta compression first (it stops at its budget: no pause covers 64 MiB and
    // a TCG guest's tight loop outruns auto-converge), then safe as it runs by default, with it.
    const bare = await ferry(BUSY.name, 'safe', { xbzrle: 'off' });
    const bareDone = bare.job?.state === 'ok';
    say(`kvm-ferry safe without XBZRLE (busy): ${bare.job?.state} in ${bareDone ? (bare.job.result.durationMs / 1000).toFixed(1) : 'nan'} s; ${JSON.stringify(bare.job?.result?.convergence ?? {})}${bareDone ? '' : ` ${bare.job?.message}`}`);
    await waitFor('the busy guest to run after safe without XBZRLE', 60_000, () => domains(A.name).concat(domains(B.name)).includes(BUSY.name));

    const safe = await ferry(BUSY.name, 'safe');
    const predictedSafeS = safe.check.prediction?.chosen?.totalSec ?? NaN;
    const sc = safe.job?.result?.convergence ?? {};
    const safeDone = safe.job?.state === 'ok';
    const safeS = safeDone ? safe.job.result.durationMs / 1000 : NaN;
    const safeDowntime = sc.downtimeMs ?? safe.job?.result?.downtimeMs ?? NaN;
    say(`kvm-ferry safe (busy): ${safe.job?.state}${safeDone ? `, guest alive after: ${await alive(BUSY.name)}` : ''} in ${safeS.toFixed(1)} s, predicted ${predictedSafeS} s («${safe.check.prediction?.sentence}»); ${JSON.stringify(sc)}${safeDone ? '' : ` ${safe.job?.message}`}`);

    writeFileSync(UFFD, '1');
    let ff: { job: any; check: any };
    try {
      // Post-copy is what this run measures: without delta compression, which would finish it in pre-copy.
      ff = await ferry(BUSY.name, 'fast-finish', { xbzrle: 'off' });
    } finally {
      writeFileSync(UFFD, uffdBefore);
    }
    const fc = ff.job?.result?.convergence ?? {};
    const ffDone = ff.job?.state === 'ok' && fc.postcopy === true;
    const ffS = ff.job?.state === 'ok' ? ff.job.result.durationMs / 1000 : NaN;
    const ffDowntime = fc.downtimeMs ?? ff.job?.result?.downtimeMs ?? NaN;
    say(`kvm-ferry fast-finish (busy): ${ff.job?.state}${ff.job?.state === 'ok' ? `, guest alive after: ${await alive(BUSY.name)}` : ''} in ${ffS.toFixed(1)} s, post-copy ${fc.postcopy}; ${JSON.stringify(fc)}${ff.job?.state === 'ok' ? '' : ` ${ff.job?.message}`}`);

    const idleSafe = await ferry(IDLE.name, 'safe');
    if (idleSafe.job?.state !== 'ok') throw new Error(`idle safe move failed: ${JSON.stringify(idleSafe.job)}`);
    const idleSafeS = idleSafe.job.result.durationMs / 1000;
    const idlePlain = await plainVirsh(IDLE.name, PLAIN_CAP_S);
    if (!idlePlain.done) throw new Error(`plain virsh of the idle guest failed: ${idlePlain.out}`);
    say(`idle guest: kvm-ferry safe ${idleSafeS.toFixed(1)} s (predicted ${idleSafe.check.prediction?.chosen?.totalSec} s), plain virsh ${idlePlain.s.toFixed(1)} s`);

    // Safe on a guest whose working set a 500 ms pause can cover (the busy guest's cannot).
    lab('shape', A.name, 'off');
    lab('shape', B.name, 'off');
    startBusyVm(A.name, SMALL);
    await waitFor('the small guest to count', 120_000, () => counterOf(A.name, SMALL.name) >= 5);
    lab('shape', A.name, `${mbit}mbit`);
    lab('shape', B.name, `${mbit}mbit`);
    // Delta compression off: the downtime steps are what this run measures.
    const small = await ferry(SMALL.name, 'safe', { xbzrle: 'off' });
    const smc = small.job?.result?.convergence ?? {};
    const smallDone = small.job?.state === 'ok';
    say(`kvm-ferry safe (3 MiB working set): ${small.job?.state}${smallDone ? `, guest alive after: ${await alive(SMALL.name)}` : ''} in ${smallDone ? small.job.result.durationMs / 1000 : NaN} s, predicted ${small.check.prediction?.chosen?.totalSec} s, plain predicted to converge: ${small.check.prediction?.plain?.converges}; ${JSON.stringify(smc)}`);

    const f = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : 'nan');
    say(`plain_done=${plain.done ? 1 : 0} plain_s=${f(plain.s)} safe_done=${safeDone ? 1 : 0} safe_s=${f(safeS)} safe_downtime_ms=${f(safeDowntime, 0)} postcopy_done=${ffDone ? 1 : 0} postcopy_s=${f(ffS)} postcopy_downtime_ms=${f(ffDowntime, 0)} predicted_safe_s=${f(predictedSafeS)} idle_wall_ratio=${f(idleSafeS / idlePlain.s, 3)} small_safe_done=${smallDone ? 1 : 0} small_safe_s=${f(smallDone ? small.job.result.durationMs / 1000 : NaN)} small_safe_downtime_ms=${f(smc.downtimeMs ?? NaN, 0)} safe_xbzrle_pages=${sc.xbzrle?.pages ?? 'nan'} safe_noxbzrle_done=${bareDone ? 1 : 0}`);
  } finally {
    writeFileSync(UFFD, uffdBefore);
    lab('down');
  }
}

main().catch((e) => {
  process.stderr.write(`bench/convergence failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
