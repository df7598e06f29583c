import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/paths.js';
import { freeLoopbackPort } from '../helpers/nginx.js';
import { startManagerProcess, type ManagerProcess } from '../helpers/manager-process.js';
import { GUEST_DIR, removeDomains, removePoolsUnder, requireRealLibvirt, virshNames } from '../helpers/lab-prereqs.js';

/**
 * systemd is not PID 1 on these machines, so the unit's fence is rebuilt by hand
 * from the unit file itself (unshare + read-only bind mounts + setpriv) and the real
 * manager runs inside it against the real libvirtd: if a directive broke libvirt's
 * socket, virt-install, qemu-img or SQLite, the create below would fail. Emulated:
 * ProtectSystem=strict + ReadWritePaths/StateDirectory, ProtectHome=read-only,
 * PrivateTmp, NoNewPrivileges, CapabilityBoundingSet. Not emulated (no systemd):
 * the Protect{Kernel*,Clock,Hostname,ControlGroups} and Restrict* filters.
 */
const UNIT = readFileSync(join(projectRoot(), 'config/systemd/kvm-ferry.service'), 'utf8');
const directive = (k: string) => [...UNIT.matchAll(new RegExp(`^${k}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());

const prefix = `kfdp-${randomBytes(3).toString('hex')}-`;
const root = `/var/lib/kvm-ferry-e2e/${prefix.slice(0, -1)}`;
const dirs = { imageDir: join(root, 'images'), isoDir: join(root, 'iso'), dataDir: join(root, 'data') };
let port = 0;
let manager: ManagerProcess | null = null;

/** The shell that builds the fence, then execs setpriv → the manager. Values are ours, not user input. */
function sandboxWrap(): string[] {
  const app = projectRoot();
  const underTmp = /^\/(var\/)?tmp\//.test(`${app}/`);
  const stash = join(dirs.dataDir, '.app');
  const caps = directive('CapabilityBoundingSet')[0]!.split(/\s+/).map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`).join(',');
  const script = [
    'set -e',
    'mount --make-rprivate /',
    // ReadWritePaths / StateDirectory: bind each onto itself, so it stays writable after / turns read-only.
    `for d in ${dirs.dataDir} ${dirs.imageDir}; do mount --bind "$d" "$d"; done`,
    // PrivateTmp. A checkout under /tmp (a CI clone) would vanish with it, as it would
    // under systemd: carried over read-only, like the unit's BindReadOnlyPaths= would.
    ...(underTmp ? [`mkdir -p ${stash}`, `mount --bind ${app} ${stash}`] : []),
    'mount -t tmpfs -o mode=1777 tmpfs /tmp',
    'mount -t tmpfs -o mode=1777 tmpfs /var/tmp',
    ...(underTmp ? [`mkdir -p ${app}`, `mount --bind ${stash} ${app}`, `mount -o remount,bind,ro ${app}`] : []),
    // ProtectSystem=strict (and with it ProtectHome=read-only: /root and /home are on /)
    'mount -o remount,bind,ro /',
    `if touch /etc/kfdp-probe /root/kfdp-probe ${dirs.isoDir}/kfdp-probe 2>/dev/null; then echo "sandbox is not read-only" >&2; exit 97; fi`,
    `exec setpriv --no-new-privs --bounding-set -all,${caps} --inh-caps -all -- "$@"`,
  ].join('\n');
  return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'sandbox'];
}

beforeAll(async () => {
  requireRealLibvirt();
  expect(directive('ProtectSystem')).toEqual(['strict']);
  expect(directive('ProtectHome')).toEqual(['read-only']);
  expect(directive('PrivateTmp')).toEqual(['yes']);
  expect(directive('NoNewPrivileges')).toEqual(['yes']);
  expect(directive('Environment')).toContain('XDG_CACHE_HOME=/var/lib/kvm-ferry/cache');
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  copyFileSync(join(GUEST_DIR, 'guest.iso'), join(dirs.isoDir, 'tiny.iso'));
  port = await freeLoopbackPort();
  writeFileSync(join(root, 'config.yaml'), [
    'nodeName: alpha', 'libvirtUri: qemu:///system', 'listenHost: 127.0.0.1', `listenPort: ${port}`,
    `dataDir: ${dirs.dataDir}`, `imageDir: ${dirs.imageDir}`, `isoDir: ${dirs.isoDir}`, 'serialLogDir: none',
    'virtType: qemu', 'vmNetwork: none', '',
  ].join('\n'));
  // The unit's environment, with its data directory mapped to this test's.
  const env = Object.fromEntries(directive('Environment').map((kv) => {
    const i = kv.indexOf('=');
    return [kv.slice(0, i), kv.slice(i + 1).replace('/var/lib/kvm-ferry', dirs.dataDir)];
  }));
  delete env.KVM_FERRY_CONFIG;
  manager = await startManagerProcess({ configPath: join(root, 'config.yaml'), port, wrap: sandboxWrap(), env });
});

afterAll(async () => {
  await manager?.stop();
  removeDomains(prefix);
  removePoolsUnder(root);
  rmSync(root, { recursive: true, force: true });
});

async function call(method: string, path: string, body?: unknown): Promise<any> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : null });
  return r.json();
}

describe('the manager inside the systemd unit\'s fence', () => {
  it('creates (qemu-img, virt-install, libvirt socket, SQLite), starts and deletes a VM with its disk', async () => {
    const status = execFileSync('sh', ['-c', `grep -E '^(NoNewPrivs|CapBnd)' /proc/${manager!.child.pid}/status || true`], { encoding: 'utf8' });
    // The process under test is the shell's exec target: setpriv → node keeps the pid.
    expect(status).toMatch(/NoNewPrivs:\s+1/);
    const name = `${prefix}vm`;
    const made = await call('POST', '/api/nodes/alpha/vms?wait=120', { name, vcpus: 1, memoryMiB: 128, diskGiB: 1, source: 'iso', iso: 'tiny.iso', start: true });
    expect(made.job, JSON.stringify(made) + manager!.output()).toMatchObject({ state: 'ok' });
    expect(virshNames(false)).toContain(name);
    expect(existsSync(join(dirs.imageDir, `${name}.qcow2`))).toBe(true);
    const gone = await call('DELETE', `/api/nodes/alpha/vms/${name}?disks=delete&force=true&wait=60`);
    expect(gone.job, JSON.stringify(gone)).toMatchObject({ state: 'ok' });
    expect(virshNames()).not.toContain(name);
    expect(existsSync(join(dirs.imageDir, `${name}.qcow2`))).toBe(false);
    expect(existsSync(join(dirs.dataDir, 'cache/virt-manager/virt-install.log'))).toBe(true);
  });
});
