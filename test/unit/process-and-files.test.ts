import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createCommandRunner, type CommandRecord } from '../../src/adapters/process/run-command.js';
import { readDiskUsage, resolveFileInside } from '../../src/adapters/host/disk-files.js';
import { AppError } from '../../src/errors.js';

describe('createCommandRunner', () => {
  it('runs argv without a shell: metacharacters arrive as literal text', async () => {
    const records: CommandRecord[] = [];
    const run = createCommandRunner((r) => records.push(r));
    const r = await run('/bin/echo', ['$(id)', ';', '`uname`', '--foo']);
    expect(r.stdout).toBe('$(id) ; `uname` --foo\n');
    expect(records[0]).toMatchObject({ file: '/bin/echo', args: ['$(id)', ';', '`uname`', '--foo'], exitCode: 0 });
  });

  it('turns a non-zero exit into an AppError with the one-line message and the raw text as detail', async () => {
    const run = createCommandRunner();
    const err = await run('/bin/sh', ['-c', 'echo boom >&2; exit 3'], { failureMessage: 'The thing failed.' }).catch((e) => e);
    expect(err).toBeInstanceOf(AppError);
    expect(err.message).toBe('The thing failed.');
    expect(err.detail).toContain('boom');
  });

  it('returns the exit code instead of throwing when check is false', async () => {
    const r = await createCommandRunner()('/bin/false', [], { check: false });
    expect(r.exitCode).toBe(1);
  });

  it('kills a command that outlives its timeout', async () => {
    const t0 = Date.now();
    const err = await createCommandRunner()('/bin/sleep', ['10'], { timeoutMs: 200, failureMessage: 'Slow.' }).catch((e) => e);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(err.message).toMatch(/did not finish within/);
  });

  it('says when a program is not installed', async () => {
    const err = await createCommandRunner()('kvm-ferry-no-such-tool', []).catch((e) => e);
    expect(err.message).toMatch(/not installed/);
  });

  it('refuses an argument with a NUL byte before starting anything', async () => {
    const records: CommandRecord[] = [];
    const err = await createCommandRunner((r) => records.push(r))('/bin/echo', ['a\0b']).catch((e) => e);
    expect(err).toBeInstanceOf(AppError);
    expect(records).toEqual([]);
  });
});

describe('readDiskUsage', () => {
  it('reads the virtual size from a real qcow2 header and allocation from the file system', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kf-disk-'));
    const p = join(dir, 'a.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', p, '5G']);
    const u = await readDiskUsage(p, 'qcow2');
    expect(u.virtualBytes).toBe(5 * 1024 ** 3);
    expect(u.allocatedBytes).toBeGreaterThan(0);
    expect(u.allocatedBytes!).toBeLessThan(1024 * 1024);
  });

  it('uses the file size of a raw image, and nulls for a missing file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kf-disk-'));
    const p = join(dir, 'a.raw');
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', p, '1M']);
    expect((await readDiskUsage(p, 'raw')).virtualBytes).toBe(1024 * 1024);
    expect(await readDiskUsage(join(dir, 'missing'), 'qcow2')).toEqual({ virtualBytes: null, allocatedBytes: null });
  });
});

describe('resolveFileInside', () => {
  it('accepts files inside the directory and refuses escapes by .., absolute paths and symlinks', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kf-res-'));
    const isos = join(dir, 'iso');
    mkdirSync(isos);
    writeFileSync(join(isos, 'ok.iso'), 'x');
    writeFileSync(join(dir, 'outside.iso'), 'x');
    symlinkSync(join(dir, 'outside.iso'), join(isos, 'link.iso'));
    mkdirSync(join(isos, 'sub'));
    expect(await resolveFileInside(isos, 'ok.iso')).toBe(join(isos, 'ok.iso'));
    expect(await resolveFileInside(isos, join(isos, 'ok.iso'))).toBe(join(isos, 'ok.iso'));
    expect(await resolveFileInside(isos, '../outside.iso')).toBeNull();
    expect(await resolveFileInside(isos, join(dir, 'outside.iso'))).toBeNull();
    expect(await resolveFileInside(isos, 'link.iso')).toBeNull();
    expect(await resolveFileInside(isos, 'sub')).toBeNull();
    expect(await resolveFileInside(isos, 'nope.iso')).toBeNull();
  });
});

describe('stdin of started commands', () => {
  it('is closed, so a program asking a question gets EOF instead of hanging', async () => {
    const t0 = Date.now();
    const r = await createCommandRunner()('/bin/sh', ['-c', 'read answer; echo "got:$answer:$?"'], { timeoutMs: 5000 });
    expect(r.stdout).toBe('got::1\n');
    expect(Date.now() - t0).toBeLessThan(4000);
  });
});
