import { badInput } from '../errors.js';

/**
 * libvirt accepts names with spaces, `;`, `$(…)`, a leading `-` and unicode; every
 * one of those would reach a command line or a file name, so the product has its own
 * allowlist.
 */
export const VM_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function isValidVmName(name: unknown): name is string {
  return typeof name === 'string' && VM_NAME_PATTERN.test(name) && !name.endsWith('.') && !name.includes('..');
}

export function requireVmName(name: unknown, field = 'name'): string {
  if (!isValidVmName(name)) {
    throw badInput(
      field,
      'A VM name must be 1–63 characters: letters, digits, dot, dash or underscore, starting with a letter or digit.',
    );
  }
  return name;
}

/** Node names share the rule: they end up in URLs, file names and SSH configs. */
export function isValidNodeName(name: unknown): name is string {
  return isValidVmName(name);
}
