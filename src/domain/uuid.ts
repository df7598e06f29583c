import { badInput } from '../errors.js';

/**
 * libvirt's canonical UUID text (what it prints and what domainGetUUIDString returns).
 * A VM is acted on by this, never by its name: `virsh … --domain 4` resolves an
 * all-digit argument as a domain id first and a 36-character UUID-shaped one as a
 * UUID, so a name can hit another VM. Names are resolved to the UUID once, exactly.
 */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isUuid(s: unknown): s is string {
  return typeof s === 'string' && UUID_PATTERN.test(s);
}

/** Lower-cased and checked: every UUID that reaches virsh or the binding passes here. */
export function requireUuid(s: unknown, field = 'uuid'): string {
  const lower = typeof s === 'string' ? s.toLowerCase() : s;
  if (!isUuid(lower)) throw badInput(field, 'A VM UUID must look like 0f8fad5b-d9cb-469f-a165-70867728950e.');
  return lower;
}
