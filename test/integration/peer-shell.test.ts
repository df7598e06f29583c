import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { PeerShell } from '../../src/adapters/ssh/peer-shell.js';
import { parsePinnedHostKey } from '../../src/adapters/ssh/host-key.js';
import { quoteArgv } from '../../src/adapters/ssh/shell-quote.js';
import type { PeerConfig } from '../../src/config.js';
import { startLoopbackSshd, type LoopbackSshd } from '../helpers/loopback-sshd.js';

let sshd: LoopbackSshd;
beforeAll(async () => {
  sshd = await startLoopbackSshd();
});
afterAll(() => sshd?.stop());

const peer = (patch: Partial<PeerConfig> = {}): PeerConfig => ({
  name: 'beta', sshHost: '127.0.0.1', sshPort: sshd.port, sshUser: 'root', sshKeyFile: sshd.clientKey,
  hostKey: sshd.hostKey, dataAddress: '127.0.0.1', managerHost: '127.0.0.1', managerPort: 8080, ...patch,
});

describe('PeerShell over a real sshd', () => {
  it('runs argv on the peer with every metacharacter arriving literally', async () => {
    const hostile = ["it's", '$(touch /tmp/kf-pwned)', '`id`', ';', '&&', '|', '>', '"', '\\', '--foo', 'a b', '*'];
    const r = await new PeerShell(peer()).exec('printf', ['%s\\n', ...hostile]);
    expect(r.stdout.split('\n').slice(0, -1)).toEqual(hostile);
    expect(existsSync('/tmp/kf-pwned')).toBe(false);
  });

  it('returns a non-zero exit as a clear error with the remote text as detail', async () => {
    const err = await new PeerShell(peer()).exec('ls', ['/nonexistent-kf'], { failureMessage: 'Listing failed on beta.' }).catch((e) => e);
    expect(err.message).toBe('Listing failed on beta.');
    expect(err.detail).toMatch(/No such file/);
    expect((await new PeerShell(peer()).exec('false', [], { check: false })).exitCode).toBe(1);
  });

  it('refuses a host key that does not match the pin, before logging in', async () => {
    const err = await new PeerShell(peer({ hostKey: sshd.otherHostKey })).probe().catch((e) => e);
    expect(err.code).toBe('NODE_UNREACHABLE');
    expect(err.message).toMatch(/host key does not match the pinned key/);
    expect(err.detail).toMatch(/offered SHA256:.* pinned SHA256:/);
  });

  it('explains a refused login, a closed port and a malformed pin', async () => {
    const wrongUser = await new PeerShell(peer({ sshUser: 'nobody' })).probe().catch((e) => e);
    expect(wrongUser.message).toMatch(/refused the SSH login as nobody/);
    const closed = await new PeerShell(peer({ sshPort: 1 })).probe().catch((e) => e);
    expect(closed.message).toMatch(/refused the SSH connection on 127.0.0.1:1/);
    const bad = await new PeerShell(peer({ hostKey: 'ssh-ed25519 notbase64!' })).probe().catch((e) => e);
    expect(bad.message).toMatch(/malformed/);
  });
});

describe('quoteArgv and parsePinnedHostKey', () => {
  it('single-quotes every word', () => {
    expect(quoteArgv('qemu-img', ['create', "a'b", '$x'])).toBe(`'qemu-img' 'create' 'a'\\''b' '$x'`);
  });

  it('rejects a pin whose type and blob disagree', () => {
    const [, b64] = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB'.split(' ');
    expect(parsePinnedHostKey(`ssh-rsa ${b64}`)).toBeNull();
  });
});
