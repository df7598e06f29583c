import type { Domain, Hypervisor } from '@unraid/libvirt';
import { AppError, describeError } from '../../errors.js';
import { isNoAnswer, type LibvirtConnection } from './connection.js';
import { parseDomainXml, type DomainDescription } from './domain-xml.js';
import { requireUuid } from '../../domain/uuid.js';

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
  return conn.read(async (h) => {
    let domains: Domain[];
    try {
      domains = await h.connectListAllDomains();
    } catch (e) {
      throw libvirtFailed('Could not list the VMs on this node.', e);
    }
    const settled = await Promise.allSettled(domains.map((d) => snapshot(h, d)));
    // A VM undefined meanwhile is skipped; libvirt not answering is not "no VMs".
    const hung = settled.find((s) => s.status === 'rejected' && isNoAnswer(s.reason));
    if (hung) throw (hung as PromiseRejectedResult).reason;
    return settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  });
}

/** What identifies a VM: the UUID acts, the name only goes into sentences. `Vm` is one. */
export interface DomainRef {
  uuid: string;
  name: string;
}

type Key = { by: 'name'; name: string } | { by: 'uuid'; uuid: string };

const keyText = (k: Key) => (k.by === 'name' ? k.name : k.uuid);

/**
 * The binding's error codes are always -1: "missing" is decided by listing, never by
 * decoding text. A listing that fails is itself an error, not "missing".
 */
async function isListed(h: Hypervisor, k: Key): Promise<boolean> {
  let all: Domain[];
  try {
    all = await h.connectListAllDomains();
  } catch (e) {
    throw libvirtFailed('Could not list the VMs on this node.', e);
  }
  const read = (x: Domain) => (k.by === 'name' ? h.domainGetName(x) : h.domainGetUUIDString(x)).catch(() => null);
  const keys = await Promise.all(all.map(read));
  return keys.includes(keyText(k));
}

/** virDomainLookupByName is exact by name (only virsh tries ids and UUIDs first); by UUID is exact by UUID. */
async function find(h: Hypervisor, k: Key): Promise<Domain | null> {
  try {
    return k.by === 'name' ? await h.domainLookupByName(k.name) : await h.domainLookupByUUIDString(k.uuid);
  } catch (e) {
    if (!(await isListed(h, k))) return null;
    throw libvirtFailed(`Could not read VM ${keyText(k)}.`, e);
  }
}

/** A domain undefined between lookup and read is absent; any other read failure is an error. */
async function read(h: Hypervisor, k: Key): Promise<DomainSnapshot | null> {
  const d = await find(h, k);
  if (!d) return null;
  let s: DomainSnapshot;
  try {
    s = await snapshot(h, d);
  } catch (e) {
    if (!(await isListed(h, k))) return null;
    throw libvirtFailed(`Could not read VM ${keyText(k)}.`, e);
  }
  // Belt and braces: whatever answered must be the VM that was asked for.
  const got = k.by === 'name' ? s.description.name : s.description.uuid.toLowerCase();
  if (got !== keyText(k)) throw new AppError('INTERNAL', `libvirt answered with VM ${s.description.name} when asked for ${keyText(k)}.`);
  return s;
}

/** Exact name match: the one place a user's name becomes a domain (and so its UUID). */
export async function domainLookup(conn: LibvirtConnection, name: string): Promise<DomainSnapshot | null> {
  return conn.read((h) => read(h, { by: 'name', name }));
}

/** Null only when no domain has this UUID; a failed read is an error. */
export async function domainLookupByUuid(conn: LibvirtConnection, uuid: string): Promise<DomainSnapshot | null> {
  const u = requireUuid(uuid);
  return conn.read((h) => read(h, { by: 'uuid', uuid: u }));
}

async function withDomain<T>(conn: LibvirtConnection, ref: DomainRef, what: string, op: (h: Hypervisor, d: Domain) => Promise<T>): Promise<T> {
  const uuid = requireUuid(ref.uuid);
  return conn.act(async (h) => {
    const d = await find(h, { by: 'uuid', uuid });
    if (!d) throw new AppError('VM_NOT_FOUND', `VM ${ref.name} does not exist on this node.`);
    try {
      return await op(h, d);
    } catch (e) {
      throw libvirtFailed(what, e);
    }
  });
}

export const domainCreateByUuid = (conn: LibvirtConnection, ref: DomainRef) =>
  withDomain(conn, ref, `VM ${ref.name} failed to start.`, (h, d) => h.domainCreate(d));

export const domainShutdownByUuid = (conn: LibvirtConnection, ref: DomainRef) =>
  withDomain(conn, ref, `VM ${ref.name} did not accept the shutdown request.`, (h, d) => h.domainShutdown(d));

export const domainDestroyByUuid = (conn: LibvirtConnection, ref: DomainRef) =>
  withDomain(conn, ref, `VM ${ref.name} could not be forced off.`, (h, d) => h.domainDestroy(d));

export const domainUndefineByUuid = (conn: LibvirtConnection, ref: DomainRef) =>
  withDomain(conn, ref, `VM ${ref.name} could not be removed from libvirt.`, (h, d) => h.domainUndefine(d));

export const domainResumeByUuid = (conn: LibvirtConnection, ref: DomainRef) =>
  withDomain(conn, ref, `VM ${ref.name} could not be resumed.`, (h, d) => h.domainResume(d));

/**
 * Name-based forms, kept for callers not yet converted (migration): the name is
 * resolved exactly, once, and the action then goes by UUID.
 */
async function byName(conn: LibvirtConnection, name: string, act: (conn: LibvirtConnection, ref: DomainRef) => Promise<void>): Promise<void> {
  const s = await domainLookup(conn, name);
  if (!s) throw new AppError('VM_NOT_FOUND', `VM ${name} does not exist on this node.`);
  await act(conn, { uuid: s.description.uuid, name });
}

export const domainCreate = (conn: LibvirtConnection, name: string) => byName(conn, name, domainCreateByUuid);
export const domainShutdown = (conn: LibvirtConnection, name: string) => byName(conn, name, domainShutdownByUuid);
export const domainDestroy = (conn: LibvirtConnection, name: string) => byName(conn, name, domainDestroyByUuid);
export const domainUndefine = (conn: LibvirtConnection, name: string) => byName(conn, name, domainUndefineByUuid);
export const domainResume = (conn: LibvirtConnection, name: string) => byName(conn, name, domainResumeByUuid);

/** Answers with the UUID libvirt gave the new domain, so everything after acts by it. */
export async function domainDefineXml(conn: LibvirtConnection, xml: string, name: string): Promise<DomainRef> {
  return conn.act(async (h) => {
    try {
      const d = await h.domainDefineXML(xml);
      return { uuid: requireUuid(await h.domainGetUUIDString(d)), name };
    } catch (e) {
      throw libvirtFailed(`libvirt refused the definition of VM ${name}.`, e);
    }
  });
}

export async function nodeGetInfo(conn: LibvirtConnection): Promise<NodeInfoSnapshot> {
  return conn.read(async (h) => {
    const [info, hostname] = await Promise.all([h.nodeGetInfo(), h.connectGetHostname()]);
    return { cpus: info.cpus, memoryKiB: info.memory, hostname };
  });
}
