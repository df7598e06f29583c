import { describe, expect, it } from 'vitest';
import { buildVirtInstallArgs, type VirtInstallSpec } from '../../src/adapters/virt-install/virt-install.js';
import { buildListAutostartArgs, buildNetInfoArgs, buildUndefineArgs } from '../../src/adapters/virsh/virsh.js';
import { buildCreateArgs, buildInfoArgs } from '../../src/adapters/qemu-img/qemu-img.js';
import { expectGolden } from '../helpers/golden.js';

const base: VirtInstallSpec = {
  connectUri: 'qemu:///system',
  name: 'web-01',
  vcpus: 2,
  memoryMiB: 2048,
  osVariant: 'debian12',
  virtType: 'auto',
  disks: [{ path: '/var/lib/libvirt/images/web-01.qcow2', device: 'disk', format: 'qcow2' }],
  vncPort: 'auto',
  vncListen: '127.0.0.1',
  network: { kind: 'network', name: 'default' },
  serialLogPath: '/var/log/libvirt/qemu/web-01-serial.log',
};

describe('buildVirtInstallArgs', () => {
  it('builds a single-phase import definition printed as XML (new disk, auto VNC, default network)', () => {
    expectGolden('virt-install-new-disk', buildVirtInstallArgs(base));
  });

  it('adds the ISO as a read-only CD-ROM after the disk, a fixed VNC port, TCG and no network', () => {
    expectGolden(
      'virt-install-iso',
      buildVirtInstallArgs({
        ...base,
        virtType: 'qemu',
        disks: [...base.disks, { path: '/srv/iso/debian-12.iso', device: 'cdrom' }],
        vncPort: 5907,
        network: { kind: 'none' },
        serialLogPath: null,
      }),
    );
  });

  it('refuses a path containing a comma, which virt-install would split into sub-options', () => {
    expect(() => buildVirtInstallArgs({ ...base, disks: [{ path: '/x/a,format=raw', device: 'disk' }] })).toThrow(/commas/);
  });

  it('keeps every value in its own argv element', () => {
    const args = buildVirtInstallArgs(base);
    expect(args[args.indexOf('--name') + 1]).toBe('web-01');
    expect(args.every((a) => typeof a === 'string' && !a.includes('\n'))).toBe(true);
  });
});

describe('virsh and qemu-img argv', () => {
  it('matches the golden argv', () => {
    expectGolden('virsh-and-qemu-img', {
      undefine: buildUndefineArgs('qemu:///system', '0f8fad5b-d9cb-469f-a165-70867728950e'),
      autostart: buildListAutostartArgs('qemu:///system'),
      netInfo: buildNetInfoArgs('qemu:///system', 'default'),
      qemuImgCreate: buildCreateArgs('/var/lib/libvirt/images/web-01.qcow2', 10 * 1024 ** 3),
      qemuImgInfo: buildInfoArgs('/var/lib/libvirt/images/web-01.qcow2'),
    });
  });

  it('passes the VM UUID (lower-cased) as the value of --domain', () => {
    const a = buildUndefineArgs('qemu:///system', '0F8FAD5B-D9CB-469F-A165-70867728950E');
    expect(a[a.indexOf('--domain') + 1]).toBe('0f8fad5b-d9cb-469f-a165-70867728950e');
  });

  // virsh reads `--domain 4` as domain id 4 and a UUID-shaped text as a UUID: a name must never get here.
  for (const notUuid of ['4', 'web-01', '-x', '0f8fad5b-d9cb-469f-a165-70867728950', '0f8fad5bd9cb469fa16570867728950e', ' 0f8fad5b-d9cb-469f-a165-70867728950e']) {
    it(`refuses ${JSON.stringify(notUuid)} as the domain of undefine`, () => {
      expect(() => buildUndefineArgs('qemu:///system', notUuid)).toThrow(/UUID/);
    });
  }
});
