import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const GUEST_DIR = process.env.KVM_FERRY_GUEST_DIR ?? '/var/cache/kvm-ferry/guest';

/**
 * End-to-end tests never skip: when the machine cannot run them they fail with
 * one loud sentence saying what is missing and how to get it.
 */
export function requireRealLibvirt(): void {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push('they must run as root');
  if (!existsSync('/usr/bin/qemu-system-x86_64')) problems.push('qemu-system-x86 is not installed');
  try {
    execFileSync('virsh', ['-c', 'qemu:///system', 'version'], { stdio: 'pipe', timeout: 15_000 });
  } catch {
    problems.push('libvirtd does not answer on qemu:///system');
  }
  for (const f of ['guest.iso', 'guest.qcow2', 'vmlinuz', 'initrd.img']) {
    if (!existsSync(`${GUEST_DIR}/${f}`)) problems.push(`the test guest ${GUEST_DIR}/${f} is missing`);
  }
  if (problems.length) {
    const msg = `END-TO-END TESTS CANNOT RUN: ${problems.join('; ')}. Run scripts/install-pkgs.sh --test as root.`;
    process.stderr.write(`\n*** ${msg} ***\n\n`);
    throw new Error(msg);
  }
}

export function virsh(...args: string[]): string {
  return execFileSync('virsh', ['-c', 'qemu:///system', ...args], { encoding: 'utf8', timeout: 30_000 });
}

export function virshNames(all = true): string[] {
  return virsh('list', ...(all ? ['--all'] : []), '--name').split('\n').map((s) => s.trim()).filter(Boolean);
}

/** Removes every domain whose name starts with `prefix`, running or not. */
export function removeDomains(prefix: string): void {
  for (const name of virshNames().filter((n) => n.startsWith(prefix))) {
    try {
      virsh('destroy', name);
    } catch {
      /* not running */
    }
    try {
      virsh('undefine', name, '--nvram');
    } catch {
      /* already gone */
    }
  }
}

/** `what` may be a function, so the message can say what the probe saw last. */
export async function waitFor<T>(what: string | (() => string), timeoutMs: number, probe: () => T | null | undefined | false | Promise<T | null | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** virt-install defines an autostarted storage pool for every directory it puts a disk in; drop those under `root`. */
export function removePoolsUnder(root: string): void {
  for (const pool of virsh('pool-list', '--all', '--name').split('\n').map((s) => s.trim()).filter(Boolean)) {
    const path = /<path>([^<]*)<\/path>/.exec(virsh('pool-dumpxml', pool))?.[1] ?? '';
    if (path !== root && !path.startsWith(`${root}/`)) continue;
    try {
      virsh('pool-destroy', pool);
    } catch {
      /* inactive */
    }
    virsh('pool-undefine', pool);
  }
}
