import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface LoopbackSshd {
  port: number;
  dir: string;
  clientKey: string;
  hostKey: string;
  otherHostKey: string;
  stop(): void;
}

/** A TCP port nothing listens on right now, on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** A real OpenSSH server on 127.0.0.1 with its own host key and authorized_keys. */
export async function startLoopbackSshd(): Promise<LoopbackSshd> {
  const dir = mkdtempSync(join(tmpdir(), 'kf-sshd-'));
  chmodSync(dir, 0o700);
  const keygen = (path: string) => execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path]);
  keygen(join(dir, 'host_key'));
  keygen(join(dir, 'other_host_key'));
  keygen(join(dir, 'client_key'));
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')));
  const port = await freePort();
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${join(dir, 'host_key')}`, `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`, 'PermitRootLogin prohibit-password', 'PasswordAuthentication no',
      'KbdInteractiveAuthentication no', 'StrictModes no', 'UsePAM no',
    ].join('\n') + '\n',
  );
  execFileSync('mkdir', ['-p', '/run/sshd']);
  const proc: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: 'ignore' });
  for (let i = 0; i < 50; i++) {
    const up = await new Promise<boolean>((r) => {
      const c = connect(port, '127.0.0.1', () => (c.end(), r(true)));
      c.on('error', () => r(false));
    });
    if (up) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const pub = (f: string) => readFileSync(join(dir, f), 'utf8').trim();
  return {
    port, dir, clientKey: join(dir, 'client_key'), hostKey: pub('host_key.pub'), otherHostKey: pub('other_host_key.pub'),
    stop: () => proc.kill('SIGTERM'),
  };
}
