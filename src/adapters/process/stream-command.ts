import { spawn } from 'node:child_process';
import { AppError } from '../../errors.js';

export interface StreamHandle {
  stop(): void;
  readonly exited: Promise<number | null>;
}

/**
 * The long-running sibling of run-command.ts for tools that stream (virt-top --stream):
 * argv array, never a shell, stdin closed, output delivered as it arrives.
 */
export function startStream(file: string, args: readonly string[], onStdout: (chunk: string) => void): StreamHandle {
  for (const a of args) {
    if (typeof a !== 'string' || a.includes('\0')) throw new AppError('INTERNAL', 'A command argument was not a plain string.', { detail: `${file} ${JSON.stringify(args)}` });
  }
  const child = spawn(file, [...args], { shell: false, stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, LC_ALL: 'C', LANG: 'C' } });
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (c: string) => onStdout(c));
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', () => resolve(null));
    child.on('exit', (code) => resolve(code));
  });
  return { stop: () => void child.kill('SIGTERM'), exited };
}
