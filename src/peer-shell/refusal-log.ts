import { appendFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * One JSON line per refused command in <dataDir>/peer-shell.log, and the same line to
 * syslog/journald when a syslog socket exists (logger(1)). The command is cut and
 * JSON-escaped, so a hostile string cannot forge further log lines.
 */
export function logRefusal(reason: string, original: string | undefined, logDir: string | null): void {
  const line = JSON.stringify({
    time: new Date().toISOString(),
    msg: 'peer command refused',
    reason,
    command: original === undefined ? null : original.slice(0, 2000),
    from: process.env.SSH_CONNECTION?.split(' ').slice(0, 2).join(':') ?? null,
  });
  if (logDir) {
    try {
      appendFileSync(join(logDir, 'peer-shell.log'), line + '\n', { mode: 0o600 });
    } catch {
      // The refusal itself must still happen; stderr already carries the sentence.
    }
  }
  if (existsSync('/dev/log')) spawnSync('/usr/bin/logger', ['-t', 'kvm-ferry-peer-shell', '-p', 'auth.warning', '--', line], { stdio: 'ignore', timeout: 2_000 });
}
