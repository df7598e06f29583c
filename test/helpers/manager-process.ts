import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from '../../src/paths.js';
import { waitFor } from './lab-prereqs.js';

export interface ManagerProcess {
  child: ChildProcess;
  output(): string;
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The real manager (src/main.ts through tsx) as its own process with its own config,
 * so a test can kill -9 it; `wrap` prefixes the command (e.g. a sandbox).
 */
export async function startManagerProcess(opts: { configPath: string; port: number; wrap?: string[]; env?: Record<string, string> }): Promise<ManagerProcess> {
  const argv = [...(opts.wrap ?? []), process.execPath, '--import', 'tsx', join(projectRoot(), 'src/main.ts')];
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: projectRoot(),
    env: { ...process.env, KVM_FERRY_CONFIG: opts.configPath, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await waitFor('the manager to answer /healthz', 60_000, async () => {
    if (child.exitCode !== null) throw new Error(`manager exited ${child.exitCode}: ${out}`);
    return fetch(`http://127.0.0.1:${opts.port}/healthz`).then((r) => r.ok, () => false);
  });
  return {
    child,
    output: () => out,
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
