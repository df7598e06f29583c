import { AppError, describeError } from '../../errors.js';
import { buildInfoArgs } from '../../adapters/qemu-img/qemu-img.js';
import type { PlanItem } from '../../domain/migration-plan/types.js';
import type { NodeContext } from '../node-context.js';
import type { MigrationDisk } from './preflight.js';
import type { MoveRequest } from './migrate-vm.js';
import { remoteFileFact, remoteSha256 } from './plan-facts.js';
import { localSide, peerSide } from './vm-sides.js';

/** A check that answered "no": retrying does not help. */
export class VerificationMismatch extends AppError {
  constructor(message: string) {
    super('LIBVIRT_FAILED', `the result could not be verified (${message})`);
  }
}

const ATTEMPTS = 4;

/**
 * Checks every planned item on the destination before anything is removed here: the
 * VM there (running, or defined for offline) and gone from here; each mirrored disk's
 * virtual size; each copied or carried file's SHA-256; NVRAM present after a live move.
 * A failure to ask (SSH blip) is retried; a wrong answer is final.
 */
export async function verifyMoved(ctx: NodeContext, req: MoveRequest, items: PlanItem[], files: MigrationDisk[], sums: Record<string, string>, sleep: (ms: number) => Promise<void>): Promise<{ destinationAllocatedBytes: number | null }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await verifyOnce(ctx, req, items, files, sums);
    } catch (e) {
      if (e instanceof VerificationMismatch || attempt >= ATTEMPTS) throw e;
      ctx.log.warn('verification could not ask the destination; retrying', { vm: req.vmName, attempt, error: describeError(e) });
      await sleep(1000 * 2 ** (attempt - 1));
    }
  }
}

async function verifyOnce(ctx: NodeContext, req: MoveRequest, items: PlanItem[], files: MigrationDisk[], sums: Record<string, string>): Promise<{ destinationAllocatedBytes: number | null }> {
  const { peer, uuid, mode } = req;
  const [there, here] = await Promise.all([peerSide(peer, uuid), localSide(ctx, uuid)]);
  const wanted = mode === 'live' ? 'running' : 'shut off';
  if (there?.state !== wanted || here) {
    throw new VerificationMismatch(`on ${peer.name}: ${there?.state ?? 'absent'}; on ${ctx.config.nodeName}: ${here ? 'still defined' : 'gone'}`);
  }
  let allocated = 0;
  for (const f of files) {
    if (f.decision === 'copy' && mode === 'live') {
      const r = await peer.shell.exec('qemu-img', buildInfoArgs(f.path), { timeoutMs: 30_000, failureMessage: `Could not read ${f.path} on node ${peer.name}.` });
      const info = JSON.parse(r.stdout) as { 'virtual-size'?: number; 'actual-size'?: number; format?: string };
      if (info['virtual-size'] !== f.virtualBytes || info.format !== f.format) {
        throw new VerificationMismatch(`${f.path} on ${peer.name} is ${info.format} of ${info['virtual-size']} bytes, expected ${f.format} of ${f.virtualBytes}`);
      }
      allocated += info['actual-size'] ?? 0;
    } else {
      const sum = await remoteSha256(peer, f.path);
      if (sum !== sums[f.path]) throw new VerificationMismatch(`${f.path} on ${peer.name} changed after it was copied (SHA-256 differs)`);
      allocated += f.allocatedBytes;
    }
  }
  for (const i of items.filter((x) => x.decision === 'stream' && x.id === 'nvram' && x.path)) {
    const fact = await remoteFileFact(peer, i.path!);
    if (fact.kind !== 'file') throw new VerificationMismatch(`the UEFI variables ${i.path} are missing on ${peer.name}`);
  }
  return { destinationAllocatedBytes: allocated };
}
