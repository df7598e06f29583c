import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform } from 'node:stream';
import { AppError } from '../../errors.js';
import { buildMigrateArgs } from '../../adapters/virsh/migrate-args.js';
import type { JobContext } from '../job-runner.js';
import type { NodeContext } from '../node-context.js';
import type { PeerNode } from './peer-nodes.js';
import type { MigrationDisk } from './preflight.js';

const COPY_TIMEOUT_MS = 12 * 3600_000;
const PROGRESS_EVERY_MS = 1000;

/**
 * Copies a shut-off VM's disk files to the peer through SSH, byte for byte (a qcow2
 * file holds only its allocated clusters; `dd conv=sparse` keeps runs of zeros as
 * holes for raw files), and checks each copy's SHA-256 there. `conv=excl` refuses to
 * overwrite a file that appeared since pre-flight. `onCreated` is told before the
 * first byte is written, so a failure can remove a partial copy.
 */
export async function copyDisksOffline(peer: PeerNode, disks: MigrationDisk[], job: JobContext, onCreated: (path: string) => void): Promise<number> {
  const total = disks.reduce((a, d) => a + d.fileBytes, 0);
  let done = 0;
  const started = Date.now();
  let lastReport = 0;
  const report = (force = false) => {
    const now = Date.now();
    if (!force && now - lastReport < PROGRESS_EVERY_MS) return;
    lastReport = now;
    const speed = done / Math.max(0.001, (now - started) / 1000);
    const percent = total > 0 ? Math.min(100, Math.round((1000 * done) / total) / 10) : 100;
    job.progress(
      { step: 'copy', percent, dataTotalBytes: total, dataProcessedBytes: done, dataRemainingBytes: total - done, diskTotalBytes: total, diskProcessedBytes: done, speedBps: Math.round(speed), etaSec: speed > 0 ? Math.round((total - done) / speed) : null },
      `Copying the disks of ${job.job.vm} to ${peer.name}: ${percent}%`,
    );
  };
  const abort = new AbortController();
  job.onAbort(async () => abort.abort());

  for (const d of disks) {
    const hash = createHash('sha256');
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        done += chunk.length;
        report();
        cb(null, chunk);
      },
    });
    onCreated(d.path);
    const input = createReadStream(d.path, { highWaterMark: 1024 * 1024 }).pipe(counter);
    const r = await peer.shell.exec('dd', [`of=${d.path}`, 'bs=1M', 'conv=sparse,excl,fsync', 'status=none'], {
      stdin: input, signal: abort.signal, timeoutMs: COPY_TIMEOUT_MS, check: false,
    });
    if (abort.signal.aborted) throw new AppError('LIBVIRT_FAILED', 'The copy was aborted.');
    if (r.exitCode !== 0) {
      throw new AppError('COMMAND_FAILED', /No space left/i.test(r.stderr) ? `${peer.name} ran out of disk space while receiving ${d.path}.` : `Writing ${d.path} on node ${peer.name} failed.`, { detail: r.stderr.trim() });
    }
    const sum = await peer.shell.exec('sha256sum', ['--', d.path], { timeoutMs: 3600_000, failureMessage: `Could not check the copy of ${d.path} on node ${peer.name}.` });
    const mine = hash.digest('hex');
    if (sum.stdout.split(/\s/)[0] !== mine) {
      throw new AppError('COMMAND_FAILED', `The copy of ${d.path} on node ${peer.name} does not match the original (SHA-256 differs).`, { detail: `local ${mine}\nremote ${sum.stdout.trim()}` });
    }
  }
  report(true);
  return done;
}

/** Moves the (inactive) definition: libvirt's offline migration, no QEMU involved. */
export async function moveDefinitionOffline(ctx: NodeContext, vm: string, peer: PeerNode): Promise<void> {
  const args = buildMigrateArgs({ sourceUri: ctx.config.libvirtUri, vm, destUri: peer.libvirtUri, dataAddress: peer.config.dataAddress, mode: 'offline' });
  await ctx.run('virsh', args, { timeoutMs: 120_000, failureMessage: `Moving the definition of ${vm} to ${peer.name} failed.` });
}
