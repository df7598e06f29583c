import { restoreLabInstanceEnv } from '../helpers/lab-instance.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireRealLibvirt, waitFor } from '../helpers/lab-prereqs.js';
import { http, inNode, lab, LAB_STATE, labHostKey, labNodes, pinHostKey, tryInNode } from '../helpers/lab.js';
import { decodeToken, encodeToken, type InviteToken } from '../../src/domain/join/token.js';

/**
 * The mesh made only with tokens (KFLAB_JOIN=1: lab-a invites, lab-b joins; lab-a invites,
 * lab-c joins — lab.sh runs the real CLI in the nodes), then a live migration on it, the
 * refusals changing nothing on any node, a fourth node joining, and remove revoking it.
 */
const [A, B, C, D] = labNodes(4) as [ReturnType<typeof labNodes>[number], ReturnType<typeof labNodes>[number], ReturnType<typeof labNodes>[number], ReturnType<typeof labNodes>[number]];
const ALL = [A, B, C, D];
const CLI = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
const cfg = (n: { name: string }) => `${LAB_STATE}/${n.name}/config.yaml`;
const keys = (n: { name: string }) => `${LAB_STATE}/${n.name}/ssh/authorized_keys`;
const cli = (n: { name: string }, ...args: string[]) => tryInNode(n.name, 'env', `KVM_FERRY_CONFIG=${cfg(n)}`, process.execPath, CLI, ...args);
const peerNames = (n: { name: string }) => [...readFileSync(cfg(n), 'utf8').matchAll(/^ {2}- name: (\S+)$/gm)].map((m) => m[1]).sort();
const snapshot = () => ALL.map((n) => [n.name, readFileSync(cfg(n), 'utf8'), readFileSync(keys(n), 'utf8')]);
const VM = 'ferry-joined';
const VM2 = 'ferry-joined-back';
const counterOn = (node: string, vm = VM): number => {
  const m = [...tryInNode(node, 'cat', `/var/log/libvirt/qemu/${vm}-serial.log`).out.matchAll(/kvm-ferry-counter (\d+)/g)];
  return m.length ? Number(m[m.length - 1]![1]) : 0;
};
/** ssh from `from` to `to` with `from`'s own peer key, pinning `to`'s host key: does the key still open anything? */
const peerKeyConnects = (from: { name: string }, to: { name: string; addr: string }) => {
  const kh = pinHostKey(from.name, to.name, to.addr);
  return tryInNode(from.name, 'ssh', '-i', '/var/lib/kvm-ferry/peer_ed25519', '-o', `UserKnownHostsFile=${kh}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes',
    '-o', 'ConnectTimeout=10', `root@${to.addr}`, 'hostname');
};

beforeAll(async () => {
  requireRealLibvirt();
  lab('down');
  process.env.KFLAB_JOIN = '1';
  process.env.KFLAB_JOIN_LEAVE_OUT = D.name;
  try {
    lab('up', '4', '--with-manager');
  } finally {
    delete process.env.KFLAB_JOIN;
    delete process.env.KFLAB_JOIN_LEAVE_OUT;
  }
  inNode(A.name, 'cp', '/var/cache/kvm-ferry/guest/guest.qcow2', `/var/lib/kvm-ferry/images/${VM}.qcow2`);
  inNode(B.name, 'cp', '/var/cache/kvm-ferry/guest/guest.qcow2', `/var/lib/kvm-ferry/images/${VM2}.qcow2`);
}, 300_000);

afterAll(() => {
  lab('down');
  restoreLabInstanceEnv();
});

describe('a mesh made only with invite tokens', () => {
  it('has every node pinned and installed on every other one, restricted, with no lab key anywhere', async () => {
    expect(peerNames(A)).toEqual([B.name, C.name]);
    expect(peerNames(B)).toEqual([A.name, C.name]);
    expect(peerNames(C)).toEqual([A.name, B.name]);
    for (const n of [A, B, C]) {
      const lines = readFileSync(keys(n), 'utf8').trim().split('\n');
      expect(lines).toHaveLength(2);
      for (const l of lines) expect(l).toMatch(/^restrict,port-forwarding,permitopen=.*command=".*peer-shell\/main\.js --config \S+" ssh-ed25519 \S+ kvm-ferry-peer:lab-[abc]$/);
    }
    const nodes = (await http(C.url, 'GET', '/api/nodes')).json as { name: string; status: string }[];
    expect(nodes.map((x) => `${x.name}:${x.status}`)).toEqual([`${C.name}:up`, `${A.name}:up`, `${B.name}:up`]);
  });

  it('issued every node its migration certificates from one CA made at the first invite (none were made by hand)', () => {
    const tls = (n: { name: string }) => `${LAB_STATE}/${n.name}/etc-libvirt/pki-migrate`;
    const caOfA = readFileSync(`${tls(A)}/ca-cert.pem`, 'utf8');
    for (const n of [A, B, C]) {
      expect(readFileSync(`${tls(n)}/ca-cert.pem`, 'utf8'), n.name).toBe(caOfA);
      // openssl verifies the chain and that the server certificate names the address peers send data to.
      for (const role of ['server', 'client']) {
        const v = tryInNode(n.name, 'openssl', 'verify', '-CAfile', '/etc/libvirt/pki-migrate/ca-cert.pem', ...(role === 'server' ? ['-verify_ip', n.addr] : []), `/etc/libvirt/pki-migrate/${role}-cert.pem`);
        expect(v.out.trim(), `${n.name} ${role}`).toBe(`/etc/libvirt/pki-migrate/${role}-cert.pem: OK`);
      }
      // The CA key stays in the node's own data dir, root only; QEMU's group reads the node's keys.
      expect(tryInNode(n.name, 'stat', '-c', '%a %U', '/var/lib/kvm-ferry/migration-ca/ca-key.pem').out.trim()).toBe('600 root');
      expect(tryInNode(n.name, 'stat', '-c', '%a %G', '/etc/libvirt/pki-migrate/server-key.pem').out.trim()).toBe('640 libvirt-qemu');
    }
  });

  it('live-migrates running guests both ways at once on that mesh (lab-a → lab-b and lab-b → lab-a), over TLS with the certificates join issued', async () => {
    const made = await Promise.all([
      http(A.url, 'POST', `/api/nodes/${A.name}/vms?wait=120`, { name: VM, vcpus: 1, memoryMiB: 128, source: 'import', image: `${VM}.qcow2` }),
      http(B.url, 'POST', `/api/nodes/${B.name}/vms?wait=120`, { name: VM2, vcpus: 1, memoryMiB: 128, source: 'import', image: `${VM2}.qcow2` }),
    ]);
    for (const r of made) expect(r.json.job?.state, JSON.stringify(r.json)).toBe('ok');
    await waitFor('both guests to count', 90_000, () => counterOn(A.name) >= 3 && counterOn(B.name, VM2) >= 3);
    const before = { ab: counterOn(A.name), ba: counterOn(B.name, VM2) };
    const [ab, ba] = await Promise.all([
      http(A.url, 'POST', `/api/nodes/${A.name}/vms/${VM}/migrate?wait=180`, { to: B.name, mode: 'live' }),
      http(B.url, 'POST', `/api/nodes/${B.name}/vms/${VM2}/migrate?wait=180`, { to: A.name, mode: 'live' }),
    ]);
    for (const m of [ab, ba]) {
      expect(m.json.job?.state, JSON.stringify(m.json)).toBe('ok');
      expect((m.json.job.params.checks as { id: string; message: string }[]).find((c) => c.id === 'data-transport')?.message).toMatch(/encrypted \(TLS\)/);
    }
    // The two ran at the same time: each started before the other ended.
    const [j1, j2] = [ab.json.job, ba.json.job] as { startedAt: string; endedAt: string }[];
    expect(Date.parse(j1!.startedAt) < Date.parse(j2!.endedAt) && Date.parse(j2!.startedAt) < Date.parse(j1!.endedAt), JSON.stringify([j1, j2])).toBe(true);
    await waitFor('the counters to continue where they moved', 60_000, () => counterOn(B.name) > before.ab + 1 && counterOn(A.name, VM2) > before.ba + 1);
  }, 300_000);

  it('records a job started through a peer\'s tunnel as that peer, and ignores the label without the pair\'s credential', async () => {
    // From lab-c's manager, the VM now on lab-b is shut off: lab-c forwards through its tunnel with the credential from join.
    const viaC = await http(C.url, 'POST', `/api/nodes/${B.name}/vms/${VM}/poweroff?wait=60`, {});
    expect(viaC.json.job?.state, JSON.stringify(viaC.json)).toBe('ok');
    expect(viaC.json.job.user).toBe(`peer:${C.name}`);
    // Anyone reaching lab-b's port directly can write the via header, but not the credential.
    const r = await fetch(`${B.url}/api/nodes/${B.name}/vms/${VM}/start?wait=60`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-kvm-ferry-via': C.name, 'x-remote-user': 'mallory' }, body: '{}',
    });
    const forged = (await r.json()) as { job?: { state: string; user: string | null } };
    expect(forged.job?.state, JSON.stringify(forged)).toBe('ok');
    expect(forged.job?.user).toBeNull();
  }, 180_000);

  it('refuses a truncated, forged, wrong-host-key, wrong-node or taken-name token with one sentence, changing nothing on any node', () => {
    const made = cli(A, 'node', 'invite');
    expect(made.ok, made.out).toBe(true);
    const token = made.out.trim();
    const t = (decodeToken(token) as { token: InviteToken }).token;
    // The cluster's migration CA (made by lab-a's first invite): the token names it.
    expect(t.caFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}=$/);
    const before = snapshot();
    const refused = (n: { name: string }, tok: string) => {
      const r = cli(n, 'node', 'join', tok);
      expect(r.ok).toBe(false);
      const lines = r.out.trim().split('\n').filter((l) => l.startsWith('kvm-ferry: '));
      expect(lines).toHaveLength(1);
      return lines[0]!;
    };
    expect(refused(D, token.slice(0, -12))).toMatch(/damaged or incomplete|incomplete/);
    expect(refused(D, encodeToken({ ...t, secret: 'B'.repeat(43) }))).toMatch(/did not accept this invite's key/);
    const otherHostKey = labHostKey(B.name);
    expect(refused(D, encodeToken({ ...t, hostKey: otherHostKey }))).toMatch(/does not match the one in the token/);
    expect(refused(A, token)).toMatch(/made by this node/);
    expect(refused(B, token)).toMatch(/already belongs to a cluster/);
    const dConfig = readFileSync(cfg(D), 'utf8');
    writeFileSync(cfg(D), dConfig.replace(`nodeName: ${D.name}`, `nodeName: ${B.name}`));
    try {
      expect(refused(D, token)).toMatch(new RegExp(`"${B.name}" is already taken`));
    } finally {
      writeFileSync(cfg(D), dConfig);
    }
    expect(snapshot()).toEqual(before);

    // The same token still works for the right node: none of the refusals used it up.
    const ok = cli(D, 'node', 'join', token);
    expect(ok.ok, ok.out).toBe(true);
    expect(peerNames(D)).toEqual([A.name, B.name, C.name]);
    for (const n of [A, B, C]) expect(peerNames(n)).toContain(D.name);
    expect(peerKeyConnects(D, C).ok).toBe(true);

    // Reused: once d has left its cluster (its config reset), the used token is refused.
    const joinedConfig = readFileSync(cfg(D), 'utf8');
    writeFileSync(cfg(D), dConfig);
    const dKeys = readFileSync(keys(D), 'utf8');
    writeFileSync(keys(D), '');
    try {
      const mid = snapshot();
      expect(refused(D, token)).toMatch(/already used/);
      expect(snapshot()).toEqual(mid);
    } finally {
      writeFileSync(cfg(D), joinedConfig);
      writeFileSync(keys(D), dKeys);
    }
  }, 180_000);

  it('remove takes lab-d out of every member and its key no longer connects', async () => {
    const r = cli(A, 'node', 'remove', D.name);
    expect(r.ok, r.out).toBe(true);
    for (const n of [A, B, C]) {
      expect(peerNames(n)).not.toContain(D.name);
      expect(readFileSync(keys(n), 'utf8')).not.toMatch(/kvm-ferry-peer:lab-d/);
    }
    for (const n of [A, B, C]) {
      const probe = peerKeyConnects(D, n);
      expect(probe.ok).toBe(false);
      expect(probe.out).toMatch(/Permission denied/);
    }
    // The running manager re-read its peers from the file: lab-d is gone from its list without a restart.
    await waitFor('lab-a to drop lab-d', 20_000, async () => {
      const nodes = (await http(A.url, 'GET', '/api/nodes')).json as { name: string }[];
      return !nodes.some((x) => x.name === D.name);
    });
  }, 120_000);
});
