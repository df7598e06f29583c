import { execFile } from 'node:child_process';
import { AppError } from '../../errors.js';

export interface CommandResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface RunOptions {
  timeoutMs?: number;
  /** Cap on captured stdout+stderr, so a chatty tool cannot eat the heap. */
  maxOutputBytes?: number;
  /** When false a non-zero exit is returned instead of thrown. */
  check?: boolean;
  /** One short sentence used when the command fails ("virt-install could not create web-01"). */
  failureMessage?: string;
  env?: NodeJS.ProcessEnv;
  /** Kills the command (SIGKILL) when aborted. */
  signal?: AbortSignal;
}

/** One record per command actually started; tests and the abuse suite read it. */
export interface CommandRecord {
  file: string;
  args: readonly string[];
  startedAt: number;
  exitCode?: number;
  durationMs?: number;
}

export type CommandRunner = (file: string, args: readonly string[], opts?: RunOptions) => Promise<CommandResult>;

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_OUTPUT = 4 * 1024 * 1024;

/**
 * The only way kvm-ferry starts a program: argv array, never a shell, always a
 * timeout. `onRecord` lets the composition root keep an audit trail of commands.
 */
export function createCommandRunner(onRecord?: (r: CommandRecord) => void): CommandRunner {
  return (file, args, opts = {}) =>
    new Promise((resolve, reject) => {
      for (const a of args) {
        if (typeof a !== 'string' || a.includes('\0')) {
          reject(new AppError('INTERNAL', 'A command argument was not a plain string.', { detail: `${file} ${JSON.stringify(args)}` }));
          return;
        }
      }
      const record: CommandRecord = { file, args: [...args], startedAt: Date.now() };
      onRecord?.(record);
      const child = execFile(
        file,
        [...args],
        {
          shell: false,
          timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
          killSignal: 'SIGKILL',
          maxBuffer: opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT,
          env: opts.env ?? { ...process.env, LC_ALL: 'C', LANG: 'C' },
          encoding: 'utf8',
          ...(opts.signal ? { signal: opts.signal } : {}),
        },
        (error, stdout, stderr) => {
          record.durationMs = Date.now() - record.startedAt;
          const exitCode = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
          record.exitCode = exitCode;
          const result = { stdout: String(stdout), stderr: String(stderr), exitCode };
          if (!error || opts.check === false && typeof error.code === 'number') {
            resolve(result);
            return;
          }
          const timedOut = error.killed === true || (error as NodeJS.ErrnoException & { signal?: string }).signal === 'SIGKILL';
          const notFound = (error as NodeJS.ErrnoException).code === 'ENOENT';
          const what = opts.failureMessage ?? `${file} failed.`;
          const why = notFound
            ? `${file} is not installed on this node; run scripts/install-pkgs.sh.`
            : timedOut
              ? `${what} It did not finish within ${Math.round((opts.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000)} s.`
              : what;
          reject(
            new AppError('COMMAND_FAILED', why, {
              detail: [`$ ${file} ${args.join(' ')}`, String(stderr).trim() || String(stdout).trim() || error.message]
                .filter(Boolean)
                .join('\n')
                .slice(0, 8000),
              cause: error,
            }),
          );
        },
      );
      // No command may wait on us: libvirt's libssh2 transport asks "Accept SSH host key (y/n)?"
      // on stdin and would hang on an open pipe; closed, it refuses.
      child.stdin?.end();
    });
}
