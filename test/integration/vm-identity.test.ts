import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { makeFixture } from '../helpers/fixture.js';
import { api, startTestApp, type TestApp } from '../helpers/test-app.js';
import { domainList } from '../../src/adapters/libvirt/domain.js';
import { reconcileOrphanJobs } from '../../src/services/orphan-jobs.js';
import type { JobKind } from '../../src/domain/job.js';

/**
 * Issue 11, "never the wrong VM": virsh reads `--domain 1` as domain id 1 and a
 * UUID-shaped value as a UUID. Here a running VM `other` has id 1, a VM is named `1`,
 * and two VMs are named like the UUIDs of `other` and of `1`; every action on `1` (and
 * on the VM named like other's UUID) must reach that VM alone.
 */

const U_OTHER = '11111111-2222-4333-8444-555555555555';
const U_ONE = '66666666-7777-4888-9999-aaaaaaaaaaaa';
const U_NAMED_OTHER = 'bbbbbbbb-cccc-4ddd-8eee-ffffffffffff';
const U_NAMED_ONE = '01234567-89ab-4cde-8f01-23456789abcd';

let app: TestApp | null = null;
afterEach(async () => {
  await app?.close();
  app = null;
});

interface Seen {
  uuid: string;
  name: string;
  id: number | null;
  state: number;
}

async function world(opts: { snapshotOnOne?: boolean } = {}) {
  const f = makeFixture();
  const disk = (n: string) => {
    const p = join(f.imageDir, `${n}.qcow2`);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', p, '1G']);
    return p;
  };
  const disks = { other: disk('other'), one: disk('one'), namedOther: disk('named-other'), namedOne: disk('named-one') };
  // Order matters: the test driver numbers running domains from 1 in file order.
  const f2 = makeFixture([
    { name: 'other', uuid: U_OTHER, state: 'running', vncPort: 5971, disks: [{ path: disks.other }] },
    { name: U_ONE, uuid: U_NAMED_ONE, state: 'running', vncPort: 5972, disks: [{ path: disks.namedOne }] },
    { name: '1', uuid: U_ONE, state: 'shut-off', vncPort: 5973, disks: [{ path: disks.one }], snapshot: opts.snapshotOnOne ?? false },
    { name: U_OTHER, uuid: U_NAMED_OTHER, state: 'shut-off', vncPort: 5974, disks: [{ path: disks.namedOther }] },
  ]);
  app = await startTestApp({ ...f2, imageDir: f.imageDir });
  return { app, disks };
}

/** What libvirt itself says (the app's own connection: a test-driver file world is per connection). */
async function libvirtView(a: TestApp): Promise<Map<string, Seen>> {
  const all = await domainList(a.deps.node.ctx.conn);
  return new Map(all.map((s) => [s.description.uuid, { uuid: s.description.uuid, name: s.description.name, id: s.description.id, state: s.stateCode }]));
}

const RUNNING = 1;
const SHUT_OFF = 5;

describe('a VM named 1, and VMs named like UUIDs, beside a running VM with id 1', () => {
  for (const target of [{ name: '1', uuid: U_ONE, port: 5973, disk: 'one' as const }, { name: U_OTHER, uuid: U_NAMED_OTHER, port: 5974, disk: 'namedOther' as const }]) {
    it(`every action on VM ${target.name} reaches that VM alone`, async () => {
      const { app, disks } = await world();
      const before = await libvirtView(app);
      expect(before.get(U_OTHER)).toMatchObject({ name: 'other', id: 1, state: RUNNING });
      expect(before.get(U_NAMED_ONE)).toMatchObject({ id: 2, state: RUNNING });
      expect(before.get(target.uuid)).toMatchObject({ name: target.name, id: null, state: SHUT_OFF });
      const bystanders = [...before.values()].filter((v) => v.uuid !== target.uuid);
      const path = `/api/nodes/alpha/vms/${encodeURIComponent(target.name)}`;

      /** After each step: the target is as expected, every other VM exactly as it was, every other disk still there. */
      const check = async (step: string, targetState: number | null) => {
        const now = await libvirtView(app);
        for (const b of bystanders) expect(now.get(b.uuid), `${b.name} after ${step}`).toEqual(b);
        if (targetState === null) expect(now.has(target.uuid), `${target.name} after ${step}`).toBe(false);
        else expect(now.get(target.uuid)?.state, `${target.name} after ${step}`).toBe(targetState);
        for (const [k, p] of Object.entries(disks)) if (k !== target.disk) expect(existsSync(p), `${p} after ${step}`).toBe(true);
      };

      const shown = (await api(app, 'GET', path)).json;
      expect(shown).toMatchObject({ name: target.name, uuid: target.uuid, state: 'shut-off', vncPort: target.port });

      const job = async (method: string, p: string, body?: unknown) => {
        const r = await api(app, method, p, body);
        expect(r.status, r.text).toBe(200);
        expect(r.json.job).toMatchObject({ vm: target.name, state: 'ok', params: { uuid: target.uuid } });
      };

      await job('POST', `${path}/start?wait=10`);
      await check('start', RUNNING);

      const console = await api(app, 'GET', `${path}/console`);
      expect(console.json).toMatchObject({ available: true, message: `The VNC server of VM ${target.name} listens on 127.0.0.1:${target.port}.` });
      const ticket = await api(app, 'POST', `${path}/console`);
      expect(ticket.status).toBe(201);
      expect(ticket.json.wsPath).toContain(`vm=${encodeURIComponent(target.name)}&`);

      await job('POST', `${path}/shutdown?wait=10`, { timeoutSec: 5 });
      await check('shutdown', SHUT_OFF);
      await job('POST', `${path}/start?wait=10`);
      await job('POST', `${path}/poweroff?wait=10`);
      await check('poweroff', SHUT_OFF);
      await job('POST', `${path}/start?wait=10`);
      await job('DELETE', `${path}?disks=delete&force=true&wait=10`);
      await check('delete', null);
      expect(existsSync(disks[target.disk])).toBe(false);

      // Every virsh command that named a domain named this one, by UUID.
      const domainArgs = app.commands.filter((c) => c.file === 'virsh' && c.args.includes('--domain')).map((c) => c.args[c.args.indexOf('--domain') + 1]);
      for (const d of domainArgs) expect(d).toBe(target.uuid);
    });
  }

  it('falls back to virsh undefine (snapshot metadata, as for NVRAM) naming VM 1 by UUID, never as id 1', async () => {
    const { app, disks } = await world({ snapshotOnOne: true });
    const before = await libvirtView(app);
    const r = await api(app, 'DELETE', '/api/nodes/alpha/vms/1?disks=delete&wait=10');
    // The test driver's undefine knows no --nvram flag, so virsh fails and the job says so
    // (and leaves the disks); what matters here is whom virsh was told to undefine.
    expect(r.json.job, JSON.stringify(r.json.job)).toMatchObject({ state: 'failed', message: 'libvirt could not remove VM 1.' });
    const undefines = app.commands.filter((c) => c.file === 'virsh' && c.args.includes('undefine'));
    expect(undefines).toHaveLength(1);
    expect(undefines[0]!.args).toEqual(['-c', app.config.libvirtUri, 'undefine', '--domain', U_ONE, '--nvram', '--managed-save', '--snapshots-metadata', '--checkpoints-metadata']);
    expect(await libvirtView(app)).toEqual(before);
    for (const p of Object.values(disks)) expect(existsSync(p)).toBe(true);
  });

  it('refuses an action whose UUID (as the page showed it) is no longer the named VM, and changes nothing', async () => {
    const { app } = await world();
    const before = await libvirtView(app);
    const r = await api(app, 'POST', '/api/nodes/alpha/vms/1/start', { uuid: U_OTHER });
    expect(r.status).toBe(409);
    expect(r.json.error).toMatchObject({ code: 'VM_STATE_CONFLICT', field: 'uuid' });
    const bad = await api(app, 'DELETE', '/api/nodes/alpha/vms/1?uuid=1');
    expect(bad.status).toBe(400);
    expect(await libvirtView(app)).toEqual(before);
    expect((await api(app, 'GET', '/api/jobs')).json).toEqual([]);
    // The matching UUID is accepted.
    expect((await api(app, 'POST', '/api/nodes/alpha/vms/1/start?wait=10', { uuid: U_ONE })).json.job.state).toBe('ok');
  });

  it('page forms carry the UUID of the VM they show, and a stale one is refused', async () => {
    const { app } = await world();
    const html = await (await fetch(app.url + '/')).text();
    const token = /name="_csrf" value="([^"]+)"/.exec(html)![1]!;
    const formsOf = (name: string) => html.match(new RegExp(`<form method="post" action="/nodes/alpha/vms/${name}/[a-z]+"[\\s\\S]*?</form>`, 'g')) ?? [];
    expect(formsOf('1')).toHaveLength(2); // start, delete: it is shut off
    for (const f of formsOf('1')) expect(f).toContain(`<input type="hidden" name="uuid" value="${U_ONE}">`);
    expect(formsOf('other')).toHaveLength(3); // shutdown, force off, delete
    for (const f of formsOf('other')) expect(f).toContain(`<input type="hidden" name="uuid" value="${U_OTHER}">`);
    const post = (uuid: string) => fetch(`${app.url}/nodes/alpha/vms/1/start`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: token, uuid }).toString(), redirect: 'manual',
    });
    const before = await libvirtView(app);
    const stale = await post(U_OTHER);
    expect(stale.status).toBe(409);
    expect(await stale.text()).toContain('VM 1 is not the VM you saw');
    expect(await libvirtView(app)).toEqual(before);
    expect((await post(U_ONE)).status).toBe(303);
    await app.deps.jobs.drain();
    expect((await libvirtView(app)).get(U_ONE)?.state).toBe(RUNNING);
  });

  it('after a restart, settles power jobs against the UUID they recorded, not whatever VM now has the name', async () => {
    const { app } = await world();
    const repo = app.deps.jobsRepo;
    const start = (kind: JobKind, vm: string, uuid: string) => repo.start({ kind, node: 'alpha', vm, user: null, params: { uuid }, message: 'running' }).id;
    // Both jobs acted on earlier VMs "1" and "other", since deleted and re-created under those names.
    const deleted = start('delete', '1', 'f1234567-89ab-4cde-8f01-23456789abcd');
    const started = start('start', 'other', 'f7654321-89ab-4cde-8f01-23456789abcd');
    await reconcileOrphanJobs(app.deps.node.ctx);
    expect(repo.get(deleted)).toMatchObject({ state: 'ok', message: expect.stringMatching(/^VM 1 is deleted/) });
    expect(repo.get(started)).toMatchObject({ state: 'failed', message: expect.stringMatching(/did not start/) });
  });

  it('creates VMs named 2 and like a UUID, and starts the one it defined', async () => {
    const { app } = await world();
    for (const name of ['2', U_NAMED_ONE]) {
      const r = await api(app, 'POST', '/api/nodes/alpha/vms?wait=20', { name, vcpus: 1, memoryMiB: 128, diskGiB: 1, source: 'none' });
      expect(r.json.job, r.text).toMatchObject({ state: 'ok', message: `VM ${name} created and started.` });
      const vm = (await api(app, 'GET', `/api/nodes/alpha/vms/${name}`)).json;
      expect(vm).toMatchObject({ name, state: 'running' });
      expect(r.json.job.result.uuid).toBe(vm.uuid);
    }
    const now = await libvirtView(app);
    expect(now.get(U_OTHER)).toMatchObject({ id: 1, state: RUNNING });
    expect(now.get(U_ONE)).toMatchObject({ state: SHUT_OFF });
    expect(now.get(U_NAMED_OTHER)).toMatchObject({ state: SHUT_OFF });
  });
});
