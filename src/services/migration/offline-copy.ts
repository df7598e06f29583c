import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform } from 'node:stream';
import { AppError } from '../../errors.js';
import { buildMigrateArgs } from '../../adapters/virsh/migrate-args.js';
import type { JobContext } from '../job-runner.js';
import type { NodeContext } from '../node-context.js';
import type { PeerNode } from './peer-nodes.js';
import { createExclusive, type CreatedFile } from './remote-files.js';
import { remoteSha256 } from './plan-facts.js';

const COPY_TIMEOUT_MS = 12 * 3600_000;
const PROGRESS_EVERY_MS = 1000;

/** One file to put on the destination at the same path. */
export interface FileToCopy {
  path: string;
  /** Apparent size: what is read. */
  fileBytes: number;
}

/**
 * Copies files to the peer through SSH, byte for byte (a qcow2 file holds only its
 * allocated clusters; `dd conv=sparse` keeps runs of zeros as holes), and checks each
 * copy's SHA-256 there. Each destination file is first claimed with an exclusive
 * create (see createExclusive) and reported through `onCreated` only once it is ours,
 * so a failure removes exactly what this job made. Returns each file's SHA-256.
 */
export async function copyFilesToPeer(peer: PeerNode, files: FileToCopy[], job: JobContext, onCreated: (f: CreatedFile) => void): Promise<{ bytes: number; sha256: Record<string, string> }> {
  const total = files.reduce((a, d) => a + d.fileBytes, 0);
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
      `Copying files of ${job.job.vm} to ${peer.name}: ${percent}%`,
    );
  };
  const abort = new AbortController();
  job.onAbort(async () => abort.abort());
  const sums: Record<string, string> = {};

  for (const d of files) {
    onCreated(await createExclusive(peer, d.path));
    const hash = createHash('sha256');
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        done += chunk.length;
        report();
        cb(null, chunk);
      },
    });
    const input = createReadStream(d.path, { highWaterMark: 1024 * 1024 }).pipe(counter);
    // notrunc: the file is already ours (claimed above); dd must write into it, not re-create it.
    const r = await peer.shell.exec('dd', [`of=${d.path}`, 'bs=1M', 'conv=sparse,notrunc,fsync', 'status=none'], {
      stdin: input, signal: abort.signal, timeoutMs: COPY_TIMEOUT_MS, check: false,
    });
    if (abort.signal.aborted) throw new AppError('LIBVIRT_FAILED', 'The copy was aborted.');
    if (r.exitCode !== 0) {
      throw new AppError('COMMAND_FAILED', /No space left/i.test(r.stderr) ? `${peer.name} ran out of disk space while receiving ${d.path}.` : `Writing ${d.path} on node ${peer.name} failed.`, { detail: r.stderr.trim() });
    }
    // A sparse copy of a file ending in zeros is shorter; the size must be the original's.
    await peer.shell.exec('truncate', ['-s', String(d.fileBytes), '--', d.path], { timeoutMs: 30_000, failureMessage: `Could not size ${d.path} on node ${peer.name}.` });
    const mine = hash.digest('hex');
    const theirs = await remoteSha256(peer, d.path);
    if (theirs !== mine) {
      throw new AppError('COMMAND_FAILED', `The copy of ${d.path} on node ${peer.name} does not match the original (SHA-256 differs).`, { detail: `local ${mine}\nremote ${theirs}` });
    }
    sums[d.path] = mine;
  }
  report(true);
  return { bytes: done, sha256: sums };
}

/** Moves the (inactive) definition: libvirt's offline migration, no QEMU involved. */
export async function moveDefinitionOffline(ctx: NodeContext, vm: { name: string; uuid: string }, peer: PeerNode): Promise<void> {
  const args = buildMigrateArgs({ sourceUri: ctx.config.libvirtUri, uuid: vm.uuid, destUri: peer.libvirtUri, dataAddress: peer.config.dataAddress, mode: 'offline' });
  await ctx.run('virsh', args, { timeoutMs: 120_000, failureMessage: `Moving the definition of ${vm.name} to ${peer.name} failed.` });
}
