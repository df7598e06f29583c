import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { mkdirSync } from 'node:fs';

/** This node's own peer key (ed25519, no passphrase), made once; returns its public line. */
export function ensurePeerKey(file: string, comment: string): string {
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  }
  return readFileSync(`${file}.pub`, 'utf8').trim();
}
