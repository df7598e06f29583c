import { restoreLabInstanceEnv } from '../helpers/lab-instance.js';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireRealLibvirt } from '../helpers/lab-prereqs.js';
import { inNode, lab, LAB_SCRIPT, LAB_STATE, labNodes, pinHostKey } from '../helpers/lab.js';

/**
 * The lab's nodes are meshed by invite/join, so lab-a's peer key is installed on lab-b the
 * way it is on real servers (restrict, permitopen, command=kvm-ferry-peer-shell). Through
 * lab-a's real ssh with that key to lab-b's real sshd: a general command is refused, said
 * on stderr, exits non-zero and leaves a line in lab-b's peer-shell log; kvm-ferry's own
 * steps run.
 */
const [A, B] = labNodes(2) as [ReturnType<typeof labNodes>[number], ReturnType<typeof labNodes>[number]];
const KEY = '/var/lib/kvm-ferry/peer_ed25519';
/** B's host key pinned at its address, as the join pinned it in A's config (written once the lab is up). */
let KNOWN = '';
const LOG = `${LAB_STATE}/${B.name}/kvm-ferry/peer-shell.log`;
const IMG = '/var/lib/kvm-ferry/images/peer-shell-probe.qcow2';

/** `ssh root@B <command>` from A with A's peer key; the command string goes to sshd as is. */
function sshToB(command: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('bash', [LAB_SCRIPT, 'exec', A.name, 'ssh', '-i', KEY, '-o', `UserKnownHostsFile=${KNOWN}`, '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', `root@${B.addr}`, command], { encoding: 'utf8', timeout: 60_000, input: '' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const logLines = (): string[] => (existsSync(LOG) ? readFileSync(LOG, 'utf8').split('\n').filter(Boolean) : []);

beforeAll(() => {
  requireRealLibvirt();
  lab('down');
  lab('up', '2');
  KNOWN = pinHostKey(A.name, B.name, B.addr);
  inNode(B.name, 'qemu-img', 'create', '-q', '-f', 'qcow2', IMG, '64M');
});

afterAll(() => {
  lab('down');
  restoreLabInstanceEnv();
});

describe('the restricted peer key', () => {
  it('is installed with the forced command and no general forwarding', () => {
    const line = readFileSync(`${LAB_STATE}/${B.name}/ssh/authorized_keys`, 'utf8').trim();
    expect(line).toMatch(/^restrict,port-forwarding,permitopen="[0-9.]+:8080",permitopen="127\.0\.0\.1:5900",.*command="\/usr\/bin\/node \S+\/dist\/src\/peer-shell\/main\.js --config \S+" ssh-ed25519 /);
  });

  it.each([
    ['id', 'Refused: "id" is not a command kvm-ferry runs on a peer.'],
    // cat is allowed for one file only (the userfaultfd sysctl).
    ['cat /etc/shadow', 'Refused: these arguments to cat are not a kvm-ferry peer command'],
    ["bash -c 'id'", 'Refused: "bash" is not a command kvm-ferry runs on a peer.'],
    ['virsh list; id', 'Refused: the command contains the shell character ";" outside quotes.'],
    [`'rm' '-f' '--' '/etc/hostname'`, 'Refused: these arguments to rm are not a kvm-ferry peer command'],
  ])('refuses %j with a sentence, a non-zero exit and a logged line', (command, sentence) => {
    const before = logLines().length;
    const r = sshToB(command);
    expect(r.status).toBe(126);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`kvm-ferry-peer-shell: ${sentence}`);
    expect(r.stderr).not.toMatch(/uid=|root:/);
    const added = logLines().slice(before).map((l) => JSON.parse(l) as { msg: string; command: string; reason: string; from: string });
    expect(added).toHaveLength(1);
    expect(added[0]).toMatchObject({ msg: 'peer command refused', command, from: expect.stringContaining(A.addr) });
    expect(added[0]!.reason).toContain(sentence);
  });

  it('refuses an interactive login', () => {
    const r = spawnSync('bash', [LAB_SCRIPT, 'exec', A.name, 'ssh', '-i', KEY, '-o', `UserKnownHostsFile=${KNOWN}`, '-o', 'BatchMode=yes', `root@${B.addr}`],
      { encoding: 'utf8', timeout: 60_000, input: 'id\n' });
    expect(r.status).toBe(126);
    expect(r.stdout).not.toContain('uid=');
  });

  it("runs kvm-ferry's own steps: qemu-img info of an image, df of the image dir", () => {
    const info = sshToB(`'qemu-img' 'info' '-U' '--output=json' '${IMG}'`);
    expect(info.status, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout)).toMatchObject({ format: 'qcow2', 'virtual-size': 64 * 1024 * 1024 });
    const df = sshToB(`'df' '-B1' '--output=avail' '--' '/var/lib/kvm-ferry/images'`);
    expect(df.status, df.stderr).toBe(0);
    expect(df.stdout).toMatch(/^\s*Avail\s*\n\s*\d+\s*$/);
  });
});
