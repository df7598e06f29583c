import { describe, expect, it } from 'vitest';
import { parseCreateVmRequest, type HostLimits } from '../../src/domain/vm-spec.js';
import { isValidVmName } from '../../src/domain/names.js';
import { requireInt } from '../../src/domain/numbers.js';
import { AppError } from '../../src/errors.js';

const limits: HostLimits = { hostCpus: 4, hostMemoryMiB: 8192, freeDiskBytes: 50 * 1024 ** 3, osVariants: new Set(['generic', 'debian12']) };
const ok = { name: 'web-01', vcpus: 2, memoryMiB: 1024, diskGiB: 10 };

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AppError);
    expect((e as AppError).httpStatus).toBe(400);
    return (e as AppError).field;
  }
  throw new Error('expected a 400');
}

describe('VM names', () => {
  it.each(['web-01', 'a', 'DB_2.prod', 'x'.repeat(63)])('accepts %s', (n) => expect(isValidVmName(n)).toBe(true));
  it.each(['', '-rf', '--foo', 'a b', 'a;b', '$(id)', '`id`', "a'b", 'вм', 'a/b', 'a\nb', 'x'.repeat(64), '.hidden', 'a..b', 'trailing.'])(
    'refuses %j',
    (n) => expect(isValidVmName(n)).toBe(false),
  );
});

describe('parseCreateVmRequest', () => {
  it('fills sensible defaults: generic OS, auto VNC, empty disk, start now', () => {
    expect(parseCreateVmRequest(ok, limits)).toEqual({
      name: 'web-01', vcpus: 2, memoryMiB: 1024, osVariant: 'generic', diskGiB: 10, vncPort: 'auto', source: { kind: 'none' }, start: true,
    });
  });

  it('accepts form strings as well as JSON numbers', () => {
    const r = parseCreateVmRequest({ name: 'a', vcpus: '1', memoryMiB: '64', diskGiB: '1', vncPort: '5900', start: 'false', source: 'iso', iso: 'd.iso' }, limits);
    expect(r).toMatchObject({ vcpus: 1, memoryMiB: 64, diskGiB: 1, vncPort: 5900, start: false, source: { kind: 'iso', iso: 'd.iso' } });
  });

  it('does not ask for a disk size when importing', () => {
    expect(parseCreateVmRequest({ ...ok, diskGiB: undefined, source: 'import', image: 'x.qcow2' }, limits).diskGiB).toBeNull();
  });

  it.each([
    [{ vcpus: 5 }, 'vcpus'],
    [{ vcpus: 1.5 }, 'vcpus'],
    [{ vcpus: '1e1' }, 'vcpus'],
    [{ vcpus: '0x2' }, 'vcpus'],
    [{ vcpus: ' -1' }, 'vcpus'],
    [{ memoryMiB: 63 }, 'memoryMiB'],
    [{ memoryMiB: 8193 }, 'memoryMiB'],
    [{ memoryMiB: Number.MAX_SAFE_INTEGER + 2 }, 'memoryMiB'],
    [{ diskGiB: 0 }, 'diskGiB'],
    [{ diskGiB: 51 }, 'diskGiB'],
    [{ vncPort: 5899 }, 'vncPort'],
    [{ vncPort: 65536 }, 'vncPort'],
    [{ osVariant: 'win95' }, 'osVariant'],
    [{ source: 'pxe' }, 'source'],
    [{ source: 'iso' }, 'iso'],
    [{ source: 'iso', iso: 'a\nb' }, 'iso'],
    [{ source: 'import', image: 'x'.repeat(300) }, 'image'],
    [{ start: 'maybe' }, 'start'],
    [{ name: ['a', 'b'] }, 'name'],
  ])('refuses %j naming the field', (patch, field) => {
    expect(fieldOf(() => parseCreateVmRequest({ ...ok, ...patch }, limits))).toBe(field);
  });

  it('refuses any disk when the image directory has under 1 GiB free', () => {
    expect(fieldOf(() => parseCreateVmRequest(ok, { ...limits, freeDiskBytes: 100 * 1024 ** 2 }))).toBe('diskGiB');
  });
});

describe('requireInt', () => {
  it('says what range is allowed', () => {
    expect(() => requireInt('n', 'x', 1, 3, 'Count')).toThrow('Count must be a whole number between 1 and 3.');
  });
});
