import { copyFileSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';

/**
 * Replaces a file's contents all at once: a temporary file beside it, then rename, so a
 * reader (sshd, the manager) sees the old or the new text, never half. With `backup`,
 * the previous version is kept as FILE.bak first.
 */
export function writeFileAtomic(path: string, text: string, opts: { mode?: number; backup?: boolean } = {}): void {
  const mode = opts.mode ?? (existsSync(path) ? statSync(path).mode & 0o777 : 0o600);
  if (opts.backup && existsSync(path)) copyFileSync(path, `${path}.bak`);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, path);
}

export function readIfExists(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}
