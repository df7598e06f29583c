import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/lab-prereqs.js';

/**
 * The multi-node lab (scripts/lab.sh): two kvm-ferry "nodes" on this machine, each
 * with its own network, mount and UTS namespaces, libvirtd and sshd. Proves the
 * lab is fit for migration tests: isolated libvirtds, pinned SSH, and a real live
 * migration with --copy-storage-all of a running TCG guest by plain virsh.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const LAB = join(ROOT, 'scripts/lab.sh');
const STATE = '/var/lib/kvm-ferry-lab';
const KEY = `${STATE}/id_ed25519`;
const KNOWN_HOSTS = `${STATE}/known_hosts`;
const A = { name: 'lab-a', addr: '10.77.0.11' };
const B = { name: 'lab-b', addr: '10.77.0.12' };
/** scripts/lab.sh copies the test guest from here into each node, at the same path (private there). */
const GUEST_DIR = '/var/cache/kvm-ferry/guest';
const vm = `kflab-${randomBytes(3).toString('hex')}`;
const tmp = mkdtempSync(join(tmpdir(), 'kflab-smoke-'));

/** Never skip: say loudly what this machine lacks. */
function requireLabPrereqs(): void {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push('they must run as root (namespaces, bridges, libvirtd)');
  for (const bin of ['/usr/bin/qemu-system-x86_64', '/usr/sbin/libvirtd', '/usr/sbin/virtlogd', '/usr/sbin/sshd', '/usr/bin/qemu-img', '/usr/bin/nsenter', '/usr/bin/unshare']) {
    if (!existsSync(bin)) problems.push(`${bin} is missing`);
  }
  for (const f of ['vmlinuz', 'initrd.img']) {
    if (!existsSync(`${GUEST_DIR}/${f}`)) problems.push(`the test guest ${GUEST_DIR}/${f} is missing (scripts/build-guest.sh)`);
  }
  if (problems.length) {
    const msg = `LAB TESTS CANNOT RUN: ${problems.join('; ')}. Run scripts/install-pkgs.sh --test as root.`;
    process.stderr.write(`\n*** ${msg} ***\n\n`);
    throw new Error(msg);
  }
}

/** scripts/lab.sh with stdin closed (virsh/ssh must never wait for an answer). */
function lab(args: string[], opts: { timeoutMs?: number } = {}): string {
  return execFileSync(LAB, args, {
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 60_000,
    input: '',
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** Like lab(), for commands expected to fail: exit status and all output. */
function labTry(args: string[], timeoutMs = 60_000): { status: number | null; out: string } {
  const r = spawnSync(LAB, args, { encoding: 'utf8', timeout: timeoutMs, input: '' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const inNode = (node: string, ...cmd: string[]) => lab(['exec', node, ...cmd]);
const virshIn = (node: string, ...args: string[]) => inNode(node, 'virsh', '-q', '-c', 'qemu:///system', ...args);
const names = (out: string) => out.split('\n').map((s) => s.trim()).filter(Boolean);

function hostDomains(): string[] {
  const r = spawnSync('virsh', ['-q', '-c', 'qemu:///system', 'list', '--all', '--name'], { encoding: 'utf8', timeout: 15_000 });
  return r.status === 0 ? names(r.stdout) : [];
}

/** The guest's serial log as the node sees it (its private /var/log/libvirt). */
function serialLog(node: string): string {
  const r = spawnSync(LAB, ['exec', node, 'cat', `/var/log/libvirt/qemu/${vm}-serial.log`], { encoding: 'utf8', timeout: 15_000 });
  return r.status === 0 ? r.stdout : '';
}

function counters(log: string): { n: number; uptime: number }[] {
  return [...log.matchAll(/kvm-ferry-counter (\d+) uptime ([\d.]+)/g)].map((m) => ({ n: Number(m[1]), uptime: Number(m[2]) }));
}

function domainXml(): string {
  return `<domain type='qemu'>
  <name>${vm}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${GUEST_DIR}/vmlinuz</kernel>
    <initrd>${GUEST_DIR}/initrd.img</initrd>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/kvm-ferry/images/${vm}-data.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'>
      <source path='/var/log/libvirt/qemu/${vm}-serial.log' append='on'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

/** A file the nodes can read: /tmp is not private to them. (virsh cannot open /dev/stdin on node's stdin socket.) */
function xmlFile(xml: string): string {
  const f = join(tmp, `${randomBytes(4).toString('hex')}.xml`);
  writeFileSync(f, xml);
  return f;
}

// This file tests the lab's own plumbing (namespaces, sshd, plain virsh between nodes) with
// the lab key; the other lab files mesh their nodes by invite/join as real servers are.
const joinBefore = process.env.KFLAB_JOIN;

beforeAll(() => {
  requireLabPrereqs();
  process.env.KFLAB_JOIN = '0';
  lab(['up', '2'], { timeoutMs: 180_000 });
});

afterAll(() => {
  try {
    lab(['down'], { timeoutMs: 120_000 });
  } finally {
    if (joinBefore === undefined) delete process.env.KFLAB_JOIN;
    else process.env.KFLAB_JOIN = joinBefore;
    rmSync(tmp, { recursive: true, force: true });
  }
});

describe('the lab (scripts/lab.sh up 2)', () => {
  it("gives each node its own libvirtd that sees neither the host's domains nor the other node's", () => {
    expect(virshIn(A.name, 'hostname').trim()).toBe(A.name);
    expect(virshIn(B.name, 'hostname').trim()).toBe(B.name);
    expect(inNode(A.name, 'hostname').trim()).toBe(A.name);

    // A domain defined on lab-b exists only there.
    const onlyB = `${vm}-only-b`;
    virshIn(B.name, 'define', xmlFile(domainXml().replaceAll(vm, onlyB)));
    try {
      expect(names(virshIn(B.name, 'list', '--all', '--name'))).toContain(onlyB);
      expect(names(virshIn(A.name, 'list', '--all', '--name'))).toEqual([]);
      expect(hostDomains()).not.toContain(onlyB);
    } finally {
      virshIn(B.name, 'undefine', onlyB);
    }
    // None of the host's own domains (kfe2e-…, kfgt-… of other tests) is visible in a node.
    const host = hostDomains();
    for (const node of [A.name, B.name]) {
      const seen = names(virshIn(node, 'list', '--all', '--name'));
      expect(seen.filter((d) => host.includes(d))).toEqual([]);
    }
    // Distinct host UUIDs (migration refuses "the same host" otherwise).
    const uuid = (node: string) => /<uuid>([^<]+)<\/uuid>/.exec(virshIn(node, 'capabilities'))?.[1];
    expect(uuid(A.name)).toMatch(/^[0-9a-f-]{36}$/);
    expect(uuid(A.name)).not.toBe(uuid(B.name));
    // Up again on an up lab: says so, changes nothing.
    const again = labTry(['up', '2']);
    expect(again.status, again.out).toBe(0);
    expect(again.out).toMatch(/already up/);
  });

  it('lets lab-a reach lab-b over ssh with the lab key and the pinned host key, and refuses a wrong one', () => {
    const ssh = (knownHosts: string) =>
      labTry(['exec', A.name, 'ssh', '-i', KEY, '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null',
        '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', `root@${B.addr}`, 'hostname']);
    const good = ssh(KNOWN_HOSTS);
    expect(good.status, good.out).toBe(0);
    expect(good.out.trim()).toBe(B.name);

    // A known_hosts claiming lab-b's address has lab-a's key: a man in the middle.
    const keyOfA = readFileSync(KNOWN_HOSTS, 'utf8').split('\n').find((l) => l.startsWith(`${A.addr},`))!.split(' ').slice(1).join(' ');
    const bad = join(tmp, 'bad_known_hosts');
    writeFileSync(bad, `${B.addr} ${keyOfA}\n`);
    const refused = ssh(bad);
    expect(refused.status).not.toBe(0);
    expect(refused.out).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);

    // libvirt's own SSH transport (libssh2) pins the same way through the URI.
    const uri = (kh: string) => `qemu+libssh2://root@${B.addr}/system?keyfile=${KEY}&known_hosts=${kh}&sshauth=privkey`;
    expect(inNode(A.name, 'virsh', '-q', '-c', uri(KNOWN_HOSTS), 'hostname').trim()).toBe(B.name);
    const viaLibvirt = labTry(['exec', A.name, 'virsh', '-q', '-c', uri(bad), 'hostname']);
    expect(viaLibvirt.status).not.toBe(0);
    expect(viaLibvirt.out).toMatch(/HOST KEY VERIFICATION FAILED/);
  });

  it('live-migrates a running guest with --copy-storage-all from lab-a to lab-b by plain virsh, without a reboot', async () => {
    const disk = `/var/lib/kvm-ferry/images/${vm}-data.qcow2`;
    inNode(A.name, 'qemu-img', 'create', '-q', '-f', 'qcow2', disk, '1G');
    // Sparse destination disk of the same size, or libvirt pre-creates it fully allocated.
    inNode(B.name, 'qemu-img', 'create', '-q', '-f', 'qcow2', disk, '1G');
    virshIn(A.name, 'define', xmlFile(domainXml()));
    virshIn(A.name, 'start', vm);
    await waitFor('the guest on lab-a to print its counter', 90_000, () => (counters(serialLog(A.name)).at(-1)?.n ?? 0) >= 3);

    const dest = `qemu+libssh2://root@${B.addr}/system?keyfile=${KEY}&known_hosts=${KNOWN_HOSTS}&sshauth=privkey`;
    const started = Date.now();
    // Memory (migrateuri) and disks (--disks-uri, NBD) go to lab-b's address explicitly;
    // lab-b's QEMU listens only there. Only the control channel rides SSH.
    const mig = labTry(['exec', A.name, 'virsh', '-c', 'qemu:///system', 'migrate', '--live', '--persistent', '--undefinesource',
      '--copy-storage-all', '--verbose', vm, dest, `tcp://${B.addr}`, '--disks-uri', `tcp://${B.addr}`, '--listen-address', B.addr], 180_000);
    const wallMs = Date.now() - started;
    expect(mig.status, mig.out).toBe(0);
    expect(mig.out).toMatch(/Migration: \[100 %\]/);

    // Running on lab-b (and persistent there), gone from lab-a.
    expect(virshIn(B.name, 'domstate', vm).trim()).toBe('running');
    expect(virshIn(B.name, 'dominfo', vm)).toMatch(/Persistent:\s+yes/);
    expect(names(virshIn(A.name, 'list', '--all', '--name'))).not.toContain(vm);
    const job = virshIn(B.name, 'domjobinfo', '--completed', vm);
    const field = (label: string) => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(job)?.[1]);
    const downtimeMs = field('Total downtime');
    const elapsedMs = field('Time elapsed');
    console.log(`lab-smoke: migration of ${vm} (128 MiB, 1 GiB qcow2): virsh wall ${wallMs} ms, job ${elapsedMs} ms, downtime ${downtimeMs} ms`);
    expect(downtimeMs).toBeGreaterThan(0);
    expect(downtimeMs).toBeLessThan(10_000);

    // The guest went on counting on lab-b where it left off on lab-a: moved alive, not rebooted.
    const lastOnA = counters(serialLog(A.name)).at(-1)!;
    const onB = await waitFor('the guest to keep counting on lab-b', 30_000, () => {
      const c = counters(serialLog(B.name));
      return c.length >= 3 ? c : null;
    });
    expect(onB[0]!.n).toBeGreaterThanOrEqual(lastOnA.n);
    expect(onB[0]!.uptime).toBeGreaterThan(lastOnA.uptime);
    expect(onB.at(-1)!.n).toBeGreaterThan(lastOnA.n);
    expect(onB.some((c) => c.n === 1)).toBe(false);

    // The pre-created destination disk stayed sparse.
    const info = JSON.parse(inNode(B.name, 'qemu-img', 'info', '-U', '--output=json', disk)) as { 'actual-size': number; 'virtual-size': number };
    expect(info['virtual-size']).toBe(1024 ** 3);
    expect(info['actual-size']).toBeLessThan(16 * 1024 * 1024);
  });
});
