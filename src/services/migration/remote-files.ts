import { AppError } from '../../errors.js';
import type { PeerNode } from './peer-nodes.js';

/**
 * A file this job made on the destination, identified by device and inode: a path alone
 * could by now name a file another migration wrote, and cleanup must never touch that.
 */
export interface CreatedFile {
  path: string;
  dev: string;
  ino: string;
}

export class PathTakenError extends AppError {
  constructor(readonly path: string, node: string) {
    super('VM_STATE_CONFLICT', `The file ${path} appeared on node ${node} after pre-flight (another migration or VM claimed it); nothing of it was touched.`);
  }
}

/**
 * Creates an empty file on the peer only if nothing is at the path (O_EXCL through
 * `dd conv=excl`), then reads its identity. The claim is the reservation: a second
 * migration aiming at the same path fails here instead of writing into the first's file.
 */
export async function createExclusive(peer: PeerNode, path: string): Promise<CreatedFile> {
  const dir = path.slice(0, path.lastIndexOf('/')) || '/';
  await peer.shell.exec('mkdir', ['-p', '--', dir], { timeoutMs: 20_000, failureMessage: `Could not create the directory ${dir} on node ${peer.name}.` });
  const r = await peer.shell.exec('dd', ['if=/dev/null', `of=${path}`, 'conv=excl', 'status=none'], { check: false, timeoutMs: 20_000 });
  if (r.exitCode !== 0) {
    if (/File exists/i.test(r.stderr)) throw new PathTakenError(path, peer.name);
    throw new AppError('COMMAND_FAILED', `Could not create ${path} on node ${peer.name}.`, { detail: r.stderr.trim() });
  }
  const id = await fileIdentity(peer, path);
  if (!id) throw new AppError('COMMAND_FAILED', `${path} vanished on node ${peer.name} right after it was created.`);
  return { path, ...id };
}

export async function fileIdentity(peer: PeerNode, path: string): Promise<{ dev: string; ino: string } | null> {
  const r = await peer.shell.exec('stat', ['-c', '%d:%i', '--', path], { check: false, timeoutMs: 20_000 });
  if (r.exitCode !== 0) {
    if (/No such file/i.test(r.stderr)) return null;
    throw new AppError('COMMAND_FAILED', `Could not stat ${path} on node ${peer.name}.`, { detail: r.stderr.trim() });
  }
  const [dev, ino] = r.stdout.trim().split(':');
  return { dev: dev ?? '', ino: ino ?? '' };
}

/** Removes only files that are still the very files this job created; says what it left. */
export async function removeIfOurs(peer: PeerNode, files: readonly CreatedFile[]): Promise<{ removed: string[]; left: string[] }> {
  const removed: string[] = [];
  const left: string[] = [];
  for (const f of files) {
    const now = await fileIdentity(peer, f.path);
    if (!now) continue;
    if (now.dev !== f.dev || now.ino !== f.ino) {
      left.push(f.path);
      continue;
    }
    await peer.shell.exec('rm', ['-f', '--', f.path], { timeoutMs: 30_000, failureMessage: `Could not remove ${f.path} on node ${peer.name}.` });
    removed.push(f.path);
  }
  return { removed, left };
}

/** Job records written before files had identities carried bare paths: those are never removed blindly. */
export function createdFilesFrom(recorded: unknown): CreatedFile[] {
  if (!Array.isArray(recorded)) return [];
  return recorded.filter((r): r is CreatedFile => typeof r === 'object' && r !== null && typeof (r as CreatedFile).path === 'string' && typeof (r as CreatedFile).ino === 'string');
}
