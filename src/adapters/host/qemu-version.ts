import type { CommandRunner } from '../process/run-command.js';

/** An emulator path as libvirt writes it: absolute, no spaces or shell characters. */
const EMULATOR_PATH = /^\/[A-Za-z0-9._+\/-]{1,255}$/;

/**
 * What the VM's own emulator says of its version (`qemu-system-x86_64 --version`), or null
 * when it cannot be read. The domain's `<emulator>` is the binary libvirt runs for it, so
 * a VM on a second QEMU is judged by that one, not by the node's default.
 */
export async function emulatorVersionText(run: CommandRunner, emulator: string | null): Promise<string | null> {
  if (!emulator || !EMULATOR_PATH.test(emulator) || emulator.includes('..')) return null;
  try {
    const r = await run(emulator, ['--version'], { timeoutMs: 10_000, check: false, maxOutputBytes: 64 * 1024 });
    return r.exitCode === 0 ? r.stdout.split('\n')[0]!.trim() || null : null;
  } catch {
    return null;
  }
}
