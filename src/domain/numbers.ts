import { badInput } from '../errors.js';

/**
 * Accepts a JSON integer or a form string of plain decimal digits; refuses
 * fractions, signs, exponents, hex and anything outside [min, max].
 */
export function requireInt(field: string, value: unknown, min: number, max: number, what: string): number {
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && /^\d{1,15}$/.test(value.trim())) n = Number(value.trim());
  else throw badInput(field, `${what} must be a whole number between ${min} and ${max}.`);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw badInput(field, `${what} must be a whole number between ${min} and ${max}.`);
  }
  return n;
}

/** Form checkboxes arrive as "on"/"1"/"true", JSON as booleans. */
export function parseBool(field: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined || value === null || value === '') return fallback;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    const v = value.trim().toLowerCase();
    if (['1', 'true', 'on', 'yes'].includes(v)) return true;
    if (['0', 'false', 'off', 'no'].includes(v)) return false;
  }
  throw badInput(field, `${field} must be true or false.`);
}

export function requireChoice<T extends string>(field: string, value: unknown, choices: readonly T[], fallback?: T): T {
  if ((value === undefined || value === '') && fallback !== undefined) return fallback;
  if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
  throw badInput(field, `${field} must be one of: ${choices.join(', ')}.`);
}

/** Bytes in binary units for people ("1.5 GiB", "812 MiB"): one decimal below 10, whole above. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}
