import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { VirtInstall, type VirtInstallSpec } from '../../src/adapters/virt-install/virt-install.js';
import { createCommandRunner } from '../../src/adapters/process/run-command.js';
import { parseDomainXml } from '../../src/adapters/libvirt/domain-xml.js';
import { makeFixture } from '../helpers/fixture.js';

describe('virt-install --dry-run --print-xml on the test driver', () => {
  it('generates the domain kvm-ferry asked for: disk, CD-ROM, VNC on localhost, boot order', async () => {
    const f = makeFixture();
    const disk = join(f.imageDir, 'web-01.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '1G']);
    const iso = join(f.isoDir, 'debian.iso');
    writeFileSync(iso, 'x');
    const spec: VirtInstallSpec = {
      connectUri: f.uri, name: 'web-01', vcpus: 2, memoryMiB: 512, osVariant: 'debian11', virtType: 'auto',
      disks: [{ path: disk, device: 'disk', format: 'qcow2' }, { path: iso, device: 'cdrom' }],
      vncPort: 5950, vncListen: '127.0.0.1', network: { kind: 'none' }, serialLogPath: '/var/log/libvirt/qemu/web-01-serial.log',
    };
    const xml = await new VirtInstall(createCommandRunner(), 60_000).printXml(spec, ['--dry-run']);
    const d = parseDomainXml(xml);
    expect(d).toMatchObject({ name: 'web-01', vcpus: 2, memoryKiB: 512 * 1024, vnc: { port: 5950, listen: '127.0.0.1' } });
    expect(d.disks.map((x) => [x.device, x.path])).toEqual([['disk', disk], ['cdrom', iso]]);
    expect(xml).toMatch(/<boot dev="hd"\/>\s*<boot dev="cdrom"\/>/);
    expect(xml).toContain('<log file="/var/log/libvirt/qemu/web-01-serial.log" append="on"/>');
    expect(xml).not.toMatch(/<interface/);
  });

  it('reports a virt-install refusal as an AppError with the tool text as detail', async () => {
    const f = makeFixture();
    const err = await new VirtInstall(createCommandRunner(), 60_000)
      .printXml({ connectUri: f.uri, name: 'x', vcpus: 1, memoryMiB: 64, osVariant: 'generic', virtType: 'kvm', disks: [], vncPort: 'auto', vncListen: '127.0.0.1', network: { kind: 'none' }, serialLogPath: null })
      .catch((e) => e);
    expect(err.message).toBe('virt-install rejected the settings for VM x.');
    expect(err.detail).toMatch(/ERROR/);
  });

  it('lists OS variants from osinfo, with generic', async () => {
    const list = await new VirtInstall(createCommandRunner(), 60_000).osVariants();
    expect(list).toContain('generic');
    expect(list).toContain('debian11');
    expect(list.length).toBeGreaterThan(100);
  });
});
