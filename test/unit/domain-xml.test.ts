import { describe, expect, it } from 'vitest';
import { libosinfoShortId, parseDomainXml } from '../../src/adapters/libvirt/domain-xml.js';

// Shape of what libvirt 9 returns for a virt-install'ed QEMU guest (trimmed).
const QEMU_XML = `<domain type='qemu' id='3'>
  <name>web-01</name>
  <uuid>0f8fad5b-d9cb-469f-a165-70867728950e</uuid>
  <metadata>
    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
      <libosinfo:os id="http://debian.org/debian/12"/>
    </libosinfo:libosinfo>
  </metadata>
  <memory unit='KiB'>2097152</memory>
  <currentMemory unit='KiB'>1048576</currentMemory>
  <vcpu placement='static'>2</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type><boot dev='hd'/></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/web-01.qcow2' index='2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/srv/iso/debian.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <disk type='block' device='disk'>
      <source dev='/dev/vg0/data'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <graphics type='vnc' port='5903' autoport='yes' listen='127.0.0.1'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
  </devices>
</domain>`;

describe('parseDomainXml', () => {
  it('reads name, UUID, memory in KiB, vCPUs, arch, emulator, VNC and OS variant', () => {
    const d = parseDomainXml(QEMU_XML);
    expect(d).toMatchObject({
      name: 'web-01',
      uuid: '0f8fad5b-d9cb-469f-a165-70867728950e',
      type: 'qemu',
      memoryKiB: 2097152,
      currentMemoryKiB: 1048576,
      vcpus: 2,
      arch: 'x86_64',
      emulator: '/usr/bin/qemu-system-x86_64',
      vnc: { port: 5903, autoport: true, listen: '127.0.0.1' },
      osVariant: 'debian12',
    });
  });

  it('reads every disk with its device, source type, path, format and read-only flag', () => {
    expect(parseDomainXml(QEMU_XML).disks).toEqual([
      { target: 'vda', device: 'disk', type: 'file', path: '/var/lib/libvirt/images/web-01.qcow2', format: 'qcow2', readonly: false },
      { target: 'sda', device: 'cdrom', type: 'file', path: '/srv/iso/debian.iso', format: 'raw', readonly: true },
      { target: 'vdb', device: 'disk', type: 'block', path: '/dev/vg0/data', format: null, readonly: false },
    ]);
  });

  it('treats an inactive autoport VNC (port -1) as no port yet, and a single disk as a list', () => {
    const d = parseDomainXml(`<domain type='kvm'><name>a</name><uuid>u</uuid><memory unit='MiB'>512</memory><vcpu>1</vcpu>
      <devices><disk type='file' device='disk'><source file='/a.img'/><target dev='vda'/></disk><graphics type='vnc' port='-1' autoport='yes'/></devices></domain>`);
    expect(d.vnc).toEqual({ port: null, autoport: true, listen: null });
    expect(d.memoryKiB).toBe(512 * 1024);
    expect(d.disks).toHaveLength(1);
  });

  it('refuses a document that is not a domain', () => {
    expect(() => parseDomainXml('<network/>')).toThrow(/not a libvirt domain/);
  });

  it('turns libosinfo ids into short ids', () => {
    expect(libosinfoShortId('http://ubuntu.com/ubuntu/22.04')).toBe('ubuntu22.04');
    expect(libosinfoShortId('http://microsoft.com/win/10')).toBe('win10');
  });
});
