import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startManagerProcess, type ManagerProcess } from '../helpers/manager-process.js';
import { freeLoopbackPort } from '../helpers/nginx.js';
import { GUEST_DIR, removeDomains, removePoolsUnder, requireRealLibvirt, virsh, virshNames, waitFor } from '../helpers/lab-prereqs.js';

/**
 * kill -9 of the real manager process (src/main.ts, own config, real libvirtd + QEMU)
 * in the middle of a create; after a restart the jobs must say what libvirt really
 * shows, the database must be intact, and VMs that were there must still be there.
 */
const prefix = `kfdp-${randomBytes(3).toString('hex')}-`;
const root = `/var/lib/kvm-ferry-e2e/${prefix.slice(0, -1)}`;
const dirs = { imageDir: join(root, 'images'), isoDir: join(root, 'iso'), dataDir: join(root, 'data'), serialDir: join(root, 'serial') };
const keep = `${prefix}keep`;
let port = 0;
let manager: ManagerProcess | null = null;

const url = (p: string) => `http://127.0.0.1:${port}${p}`;
async function call(method: string, path: string, body?: unknown): Promise<any> {
  const r = await fetch(url(path), { method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : null });
  return { status: r.status, json: await r.json() };
}

async function startManager(): Promise<void> {
  manager = await startManagerProcess({ configPath: join(root, 'config.yaml'), port });
}

async function kill9(): Promise<void> {
  await manager!.kill9();
  manager = null;
}

/** Follows the job's event stream and resolves as soon as it reports `step` (before the job ends). */
async function waitForStep(jobId: number, step: string): Promise<void> {
  const res = await fetch(url(`/api/jobs/${jobId}/events`));
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  const deadline = Date.now() + 120_000;
  try {
    while (Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      for (const m of buf.matchAll(/^data: (.*)$/gm)) {
        const job = JSON.parse(m[1]!) as { state: string; progress: { step?: string } | null };
        if (job.state !== 'running') throw new Error(`job ended before step ${step}: ${m[1]}`);
        if (job.progress?.step === step) return;
      }
    }
    throw new Error(`job never reached step ${step}`);
  } finally {
    void reader.cancel().catch(() => undefined);
  }
}

beforeAll(async () => {
  requireRealLibvirt();
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  copyFileSync(join(GUEST_DIR, 'guest.iso'), join(dirs.isoDir, 'tiny.iso'));
  copyFileSync(join(GUEST_DIR, 'guest.qcow2'), join(dirs.imageDir, `${keep}.qcow2`));
  port = await freeLoopbackPort();
  writeFileSync(join(root, 'config.yaml'), [
    'nodeName: alpha', 'libvirtUri: qemu:///system', 'listenHost: 127.0.0.1', `listenPort: ${port}`,
    `dataDir: ${dirs.dataDir}`, `imageDir: ${dirs.imageDir}`, `isoDir: ${dirs.isoDir}`, `serialLogDir: ${dirs.serialDir}`,
    'virtType: qemu', 'vmNetwork: none', '',
  ].join('\n'));
  await startManager();
  const r = await call('POST', '/api/nodes/alpha/vms?wait=120', { name: keep, vcpus: 1, memoryMiB: 128, source: 'import', image: `${keep}.qcow2`, start: true });
  expect(r.json.job?.state, JSON.stringify(r.json)).toBe('ok');
});

afterAll(async () => {
  if (manager) await kill9();
  removeDomains(prefix);
  removePoolsUnder(root);
  rmSync(root, { recursive: true, force: true });
});

describe('kill -9 of the manager during a create', () => {
  it('while virt-install runs: after restart the job is failed, its half-made disk removed, nothing defined', async () => {
    const name = `${prefix}half`;
    const disk = join(dirs.imageDir, `${name}.qcow2`);
    const r = await call('POST', '/api/nodes/alpha/vms', { name, vcpus: 1, memoryMiB: 128, diskGiB: 1, source: 'iso', iso: 'tiny.iso', start: true });
    expect(r.status).toBe(202);
    await waitForStep(r.json.job.id, 'define');
    await kill9();
    expect(existsSync(disk)).toBe(true); // the half-made state the restart must clean up
    await startManager();
    const job = (await call('GET', `/api/jobs/${r.json.job.id}`)).json;
    expect(job).toMatchObject({ state: 'failed', message: expect.stringContaining(`VM ${name} was not created; its half-made disk ${disk} was removed`) });
    expect(existsSync(disk)).toBe(false);
    expect(virshNames()).not.toContain(name);
  });

  it('after the VM is defined: after restart the job is ok and the VM is there', async () => {
    const name = `${prefix}done`;
    const r = await call('POST', '/api/nodes/alpha/vms', { name, vcpus: 1, memoryMiB: 128, diskGiB: 1, source: 'none', start: true });
    expect(r.status).toBe(202);
    await waitForStep(r.json.job.id, 'start');
    await kill9();
    await startManager();
    const job = (await call('GET', `/api/jobs/${r.json.job.id}`)).json;
    expect(job).toMatchObject({ state: 'ok', message: expect.stringContaining(`VM ${name} exists: it was created (checked with libvirt after kvm-ferry restarted`) });
    expect(virshNames()).toContain(name);
    expect(existsSync(join(dirs.imageDir, `${name}.qcow2`))).toBe(true);
  });

  it('leaves the database intact and the VMs that were there untouched', async () => {
    const db = new Database(join(dirs.dataDir, 'kvm-ferry.sqlite'), { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      expect((db.prepare("SELECT count(*) AS n FROM jobs WHERE state = 'running'").get() as { n: number }).n).toBe(0);
    } finally {
      db.close();
    }
    expect(virsh('domstate', keep).trim()).toBe('running');
    const info = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', join(dirs.imageDir, `${keep}.qcow2`)], { encoding: 'utf8' })) as { format: string };
    expect(info.format).toBe('qcow2');
    const vms = (await call('GET', '/api/nodes/alpha/vms')).json as { name: string }[];
    expect(vms.map((v) => v.name).filter((n) => n.startsWith(prefix)).sort()).toEqual([`${prefix}done`, keep]);
    process.stdout.write(`crash: create killed during virt-install → failed + disk removed; killed after define → ok; integrity_check=ok; ${keep} still running\n`);
  });
});
