import { describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PeerShell } from '../../src/adapters/ssh/peer-shell.js';
import type { CommandRecord } from '../../src/adapters/process/run-command.js';

describe('PeerShell key file permissions', () => {
  it('refuses a private key other users can read, before connecting anywhere', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kfdp-key-'));
    const key = join(dir, 'id_ed25519');
    writeFileSync(key, 'not really a key');
    chmodSync(key, 0o644);
    const records: CommandRecord[] = [];
    // Port 1 on loopback: had it tried to connect, the error would be "connection refused".
    const shell = new PeerShell({ name: 'beta', sshHost: '127.0.0.1', sshPort: 1, sshUser: 'root', sshKeyFile: key, hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl', dataAddress: '127.0.0.1', managerHost: '127.0.0.1', managerPort: 8080 }, (r) => records.push(r));
    await expect(shell.probe()).rejects.toMatchObject({ code: 'NODE_UNREACHABLE', message: `The SSH key ${key} for node beta is readable by other users; run chmod 600 ${key}.` });
    chmodSync(key, 0o600);
    await expect(shell.probe()).rejects.not.toMatchObject({ message: expect.stringMatching(/readable by other users/) });
  });
});
