import type { Domain, Hypervisor } from '@unraid/libvirt';
import { AppError, describeError } from '../../errors.js';
import type { LibvirtConnection } from './connection.js';
import { parseDomainXml, type DomainDescription } from './domain-xml.js';

/** A domain as read in one pass: libvirt's numbers plus the parsed XML. */
export interface DomainSnapshot {
  stateCode: number;
  memoryKiB: number;
  maxMemoryKiB: number;
  vcpus: number;
  cpuTimeNs: number;
  description: DomainDescription;
}

export interface NodeInfoSnapshot {
  cpus: number;
  memoryKiB: number;
  hostname: string;
}

async function snapshot(h: Hypervisor, d: Domain): Promise<DomainSnapshot> {
  const [info, xml] = await Promise.all([h.domainGetInfo(d), h.domainGetXMLDesc(d)]);
  return {
    stateCode: info.state,
    memoryKiB: info.memory,
    maxMemoryKiB: info.maxMem,
    vcpus: info.nrVirtCpu,
    cpuTimeNs: Number(info.cpuTime),
    description: parseDomainXml(xml),
  };
}

function libvirtFailed(what: string, e: unknown): AppError {
  if (e instanceof AppError) return e;
  return new AppError('LIBVIRT_FAILED', what, { detail: describeError(e), cause: e });
}

/** Domains that vanish between list and read (undefined meanwhile) are skipped, not errors. */
export async function domainList(conn: LibvirtConnection): Promise<DomainSnapshot[]> {
  return conn.use(async (h) => {
    let domains: Domain[];
    try {
      domains = await h.connectListAllDomains();
    } catch (e) {
      throw libvirtFailed('Could not list the VMs on this node.', e);
    }
    const settled = await Promise.allSettled(domains.map((d) => snapshot(h, d)));
    return settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  });
}

export async function domainLookup(conn: LibvirtConnection, name: string): Promise<DomainSnapshot | null> {
  return conn.use(async (h) => {
    let d: Domain;
    try {
      d = await h.domainLookupByName(name);
    } catch (e) {
      // The binding's error codes are always -1: decide "missing" by listing, not by decoding text.
      const all = await h.connectListAllDomains();
      const names = await Promise.all(all.map((x) => h.domainGetName(x).catch(() => null)));
      if (!names.includes(name)) return null;
      throw libvirtFailed(`Could not read VM ${name}.`, e);
    }
    return snapshot(h, d).catch(() => null);
  });
}

async function withDomain<T>(conn: LibvirtConnection, name: string, what: string, op: (h: Hypervisor, d: Domain) => Promise<T>): Promise<T> {
  return conn.use(async (h) => {
    let d: Domain;
    try {
      d = await h.domainLookupByName(name);
    } catch (e) {
      throw new AppError('VM_NOT_FOUND', `VM ${name} does not exist on this node.`, { detail: describeError(e) });
    }
    try {
      return await op(h, d);
    } catch (e) {
      throw libvirtFailed(what, e);
    }
  });
}

export const domainCreate = (conn: LibvirtConnection, name: string) =>
  withDomain(conn, name, `VM ${name} failed to start.`, (h, d) => h.domainCreate(d));

export const domainShutdown = (conn: LibvirtConnection, name: string) =>
  withDomain(conn, name, `VM ${name} did not accept the shutdown request.`, (h, d) => h.domainShutdown(d));

export const domainDestroy = (conn: LibvirtConnection, name: string) =>
  withDomain(conn, name, `VM ${name} could not be forced off.`, (h, d) => h.domainDestroy(d));

export const domainUndefine = (conn: LibvirtConnection, name: string) =>
  withDomain(conn, name, `VM ${name} could not be removed from libvirt.`, (h, d) => h.domainUndefine(d));

export const domainResume = (conn: LibvirtConnection, name: string) =>
  withDomain(conn, name, `VM ${name} could not be resumed.`, (h, d) => h.domainResume(d));

export async function domainDefineXml(conn: LibvirtConnection, xml: string, name: string): Promise<void> {
  await conn.use(async (h) => {
    try {
      await h.domainDefineXML(xml);
    } catch (e) {
      throw libvirtFailed(`libvirt refused the definition of VM ${name}.`, e);
    }
  });
}

export async function nodeGetInfo(conn: LibvirtConnection): Promise<NodeInfoSnapshot> {
  return conn.use(async (h) => {
    const [info, hostname] = await Promise.all([h.nodeGetInfo(), h.connectGetHostname()]);
    return { cpus: info.cpus, memoryKiB: info.memory, hostname };
  });
}
