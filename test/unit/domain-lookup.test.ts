import { describe, expect, it } from 'vitest';
import type { Hypervisor } from '@unraid/libvirt';
import type { LibvirtConnection } from '../../src/adapters/libvirt/connection.js';
import { domainDestroyByUuid, domainLookup, domainLookupByUuid } from '../../src/adapters/libvirt/domain.js';

const UUID = '0f8fad5b-d9cb-469f-a165-70867728950e';
const XML = `<domain type='qemu' id='4'><name>web-01</name><uuid>${UUID}</uuid><memory>1024</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><devices/></domain>`;
const INFO = { state: 1, memory: 1024, maxMem: 1024, nrVirtCpu: 1, cpuTime: 0 };

/** A hypervisor whose calls fail where told to: the binding's errors all look alike (code -1). */
function fake(opts: { lookupFails?: boolean; readFails?: boolean; listed?: boolean; listFails?: boolean; xml?: string } = {}) {
  const dom = { id: 'd' };
  const fail = () => Promise.reject(new Error('libvirt: some error'));
  const calls: string[] = [];
  const h = {
    domainLookupByName: (n: string) => (calls.push(`byName:${n}`), opts.lookupFails ? fail() : Promise.resolve(dom)),
    domainLookupByUUIDString: (u: string) => (calls.push(`byUuid:${u}`), opts.lookupFails ? fail() : Promise.resolve(dom)),
    domainGetInfo: () => (opts.readFails ? fail() : Promise.resolve(INFO)),
    domainGetXMLDesc: () => (opts.readFails ? fail() : Promise.resolve(opts.xml ?? XML)),
    connectListAllDomains: () => (opts.listFails ? fail() : Promise.resolve(opts.listed === false ? [] : [dom])),
    domainGetName: () => Promise.resolve('web-01'),
    domainGetUUIDString: () => Promise.resolve(UUID),
    domainDestroy: () => (calls.push('destroy'), Promise.resolve()),
  };
  const run = <T>(op: (h: Hypervisor) => Promise<T>) => op(h as unknown as Hypervisor);
  const conn = { read: run, act: run } as unknown as LibvirtConnection;
  return { conn, calls };
}

describe('domain lookups: absent only when libvirt lists no such domain', () => {
  it('reads a VM by UUID and by exact name', async () => {
    expect((await domainLookupByUuid(fake().conn, UUID))?.description).toMatchObject({ name: 'web-01', uuid: UUID, id: 4 });
    expect((await domainLookup(fake().conn, 'web-01'))?.description.uuid).toBe(UUID);
  });

  it('answers null when the lookup fails and the listing does not show the VM', async () => {
    expect(await domainLookupByUuid(fake({ lookupFails: true, listed: false }).conn, UUID)).toBeNull();
    expect(await domainLookup(fake({ lookupFails: true, listed: false }).conn, 'web-01')).toBeNull();
  });

  it('answers null when the VM is undefined between lookup and read', async () => {
    expect(await domainLookupByUuid(fake({ readFails: true, listed: false }).conn, UUID)).toBeNull();
  });

  it('throws, not null, when the read fails while the VM is still listed', async () => {
    await expect(domainLookupByUuid(fake({ readFails: true }).conn, UUID)).rejects.toMatchObject({ code: 'LIBVIRT_FAILED' });
    await expect(domainLookup(fake({ readFails: true }).conn, 'web-01')).rejects.toMatchObject({ code: 'LIBVIRT_FAILED' });
  });

  it('throws when the lookup fails while the VM is listed, or the listing itself fails', async () => {
    await expect(domainLookupByUuid(fake({ lookupFails: true }).conn, UUID)).rejects.toMatchObject({ code: 'LIBVIRT_FAILED' });
    await expect(domainLookupByUuid(fake({ lookupFails: true, listFails: true }).conn, UUID)).rejects.toMatchObject({ code: 'LIBVIRT_FAILED' });
  });

  it('refuses an answer that is another VM than the one asked for', async () => {
    const other = XML.replace('<name>web-01</name>', '<name>4</name>');
    await expect(domainLookup(fake({ xml: other }).conn, 'web-01')).rejects.toMatchObject({ code: 'INTERNAL' });
  });

  it('acts by UUID only, and refuses anything that is not one', async () => {
    const f = fake();
    await domainDestroyByUuid(f.conn, { uuid: UUID.toUpperCase(), name: 'web-01' });
    expect(f.calls).toEqual([`byUuid:${UUID}`, 'destroy']);
    await expect(domainDestroyByUuid(f.conn, { uuid: '4', name: '4' })).rejects.toMatchObject({ code: 'BAD_INPUT' });
    await expect(domainLookupByUuid(f.conn, 'web-01')).rejects.toMatchObject({ code: 'BAD_INPUT' });
    expect(f.calls).toHaveLength(2);
  });

  it('says VM_NOT_FOUND only when no domain has the UUID', async () => {
    await expect(domainDestroyByUuid(fake({ lookupFails: true, listed: false }).conn, { uuid: UUID, name: 'web-01' })).rejects.toMatchObject({ code: 'VM_NOT_FOUND' });
    await expect(domainDestroyByUuid(fake({ lookupFails: true }).conn, { uuid: UUID, name: 'web-01' })).rejects.toMatchObject({ code: 'LIBVIRT_FAILED' });
  });
});
