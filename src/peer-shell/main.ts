#!/usr/bin/env node
/**
 * kvm-ferry-peer-shell: the forced command of a peer's SSH key (authorized_keys
 * `command="…"`). It runs the one argv the peer asked for when src/domain/peer-command.ts
 * allows it — executed directly, no shell — and otherwise refuses with one sentence on
 * stderr, exit 126, and a logged line. Usage: kvm-ferry-peer-shell [--config PATH].
 */
import { spawn } from 'node:child_process';
import { loadConfig } from '../config.js';
import { checkPeerCommand, DEFAULT_READ_DIRS, LIBVIRT_WRITE_DIRS } from '../domain/peer-command.js';
import { logRefusal } from './refusal-log.js';
import { peerVerb } from '../domain/peer-command.js';
import { runVerb } from './verbs.js';

const REFUSED = 126;

function main(): void {
  const args = process.argv.slice(2);
  if (args[0] === '--config' && args[1]) process.env.KVM_FERRY_CONFIG = args[1];
  const original = process.env.SSH_ORIGINAL_COMMAND;
  // An invite's bootstrap key (its forced command names the invite) runs the join verb and nothing else.
  const inviteId = args[2] === '--join-invite' && args[3] ? args[3] : null;
  const verb = peerVerb(original, inviteId);
  if (verb.kind === 'refused') {
    refuse(verb.reason, original, null);
    return;
  }
  if (verb.kind !== 'none') {
    void runVerb(verb).then((out) => {
      process.stdout.write(out + '\n');
    }, (e: Error) => refuse(e.message, original, null));
    return;
  }
  let dirs: string[];
  let logDir: string | null = null;
  try {
    const c = loadConfig();
    dirs = [c.imageDir, c.dataDir, c.isoDir, ...LIBVIRT_WRITE_DIRS];
    logDir = c.dataDir;
  } catch (e) {
    refuse(`The kvm-ferry config could not be read, so no peer command is allowed: ${(e as Error).message}`, original, null);
    return;
  }
  const verdict = checkPeerCommand(original, { dirs, readDirs: DEFAULT_READ_DIRS });
  if (!verdict.ok) {
    refuse(verdict.reason, original, logDir);
    return;
  }
  const [file, ...argv] = verdict.argv as [string, ...string[]];
  // Inherited stdio: dd reads the image straight from the SSH channel, virt-ssh-helper speaks libvirt's protocol on it.
  const child = spawn(file, argv, { stdio: 'inherit', shell: false });
  for (const sig of ['SIGTERM', 'SIGHUP', 'SIGINT'] as const) process.on(sig, () => child.kill(sig));
  child.on('error', (e) => {
    process.stderr.write(`kvm-ferry-peer-shell: could not start ${file}: ${e.message}\n`);
    process.exitCode = 127;
  });
  child.on('exit', (code, signal) => {
    process.exitCode = code ?? (signal ? 128 + (signalNumber(signal) ?? 1) : 1);
  });
}

function refuse(reason: string, original: string | undefined, logDir: string | null): void {
  process.stderr.write(`kvm-ferry-peer-shell: ${reason}\n`);
  logRefusal(reason, original, logDir);
  process.exitCode = REFUSED;
}

function signalNumber(s: NodeJS.Signals): number | undefined {
  return ({ SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGPIPE: 13, SIGTERM: 15 } as Record<string, number>)[s];
}

main();
