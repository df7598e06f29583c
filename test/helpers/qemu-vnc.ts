import { freePort } from './loopback-sshd.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';

export interface QemuVnc {
  port: number;
  proc: ChildProcess;
  stop(): Promise<void>;
}


/**
 * A real QEMU VNC server on 127.0.0.1 without libvirt: a paused (-S), diskless TCG
 * machine with a VGA card. Test-driver domains have no display of their own; a fixture
 * names this port so the proxy talks to real QEMU. Costs no CPU while paused.
 */
export async function startQemuVnc(): Promise<QemuVnc> {
  const port = await freePort();
  const proc = spawn('qemu-system-x86_64', ['-machine', 'pc', '-accel', 'tcg', '-S', '-nodefaults', '-vga', 'std', '-display', 'none', '-m', '32', '-vnc', `127.0.0.1:${port - 5900}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let failed: Error | null = null;
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  proc.on('error', (e) => (failed = e));
  for (let i = 0; i < 100; i++) {
    // Never skip: without QEMU the console tests must turn red, saying why.
    if (failed) throw new Error(`qemu-system-x86_64 could not start (${(failed as Error).message}); run scripts/install-pkgs.sh --test as root.`);
    if (proc.exitCode !== null) throw new Error(`qemu-system-x86_64 exited: ${stderr}`);
    const up = await new Promise<boolean>((r) => {
      const c = connect(port, '127.0.0.1', () => (c.destroy(), r(true)));
      c.on('error', () => r(false));
    });
    if (up) break;
    if (i === 99) proc.kill('SIGKILL');
    if (i === 99) throw new Error(`QEMU's VNC server did not listen on 127.0.0.1:${port} within 10 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port, proc,
    stop: () => new Promise((r) => {
      if (proc.exitCode !== null) return r();
      proc.once('exit', () => r());
      proc.kill('SIGTERM');
    }),
  };
}
