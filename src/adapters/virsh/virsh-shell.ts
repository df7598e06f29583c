import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { AppError } from '../../errors.js';

/**
 * Tokens a shell command may hold: virsh parses its stdin line like a shell would, so only
 * plain words are allowed (no quotes, spaces, `;`, `#` or newlines). The stats daemon only
 * sends fixed commands; this refuses anything else rather than escape it.
 */
const WORD = /^[A-Za-z0-9][A-Za-z0-9_.:=-]*$|^--[a-z][a-z0-9-]*$/;

const MAX_BUFFER = 8 * 1024 * 1024;

interface Pending {
  marker: string;
  resolve: (out: string) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * One long-lived `virsh` process fed commands on its stdin: a command costs libvirt's RPC and
 * virsh's formatting, not a process start, a connection handshake and a driver open per tick.
 * Each command is followed by `echo <marker>` so the answer's end is known. A command that
 * gets no answer in `timeoutMs` (libvirtd stopped or hung) kills the process; the next
 * command starts a fresh one, so a hung libvirtd never leaves a tick waiting forever.
 */
export class VirshShell {
  private child: ChildProcessWithoutNullStreams | null = null;
  private buf = '';
  private seq = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private pending: Pending | null = null;
  private readonly spawned: number[] = [];

  constructor(private readonly uri: string, private readonly timeoutMs = 10_000, private readonly file = 'virsh') {}

  /** pid of the running virsh (benchmarks read its CPU time), null when none runs. */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** How many virsh processes were started so far (a test checks one serves many commands). */
  get starts(): number {
    return this.spawned.length;
  }

  /** Runs one command; answers its stdout (prompts removed). Commands run one at a time. */
  run(words: readonly string[]): Promise<string> {
    for (const w of words) {
      if (typeof w !== 'string' || !WORD.test(w)) {
        return Promise.reject(new AppError('INTERNAL', 'A virsh shell command word was not a plain word.', { detail: JSON.stringify(words) }));
      }
    }
    const next = this.queue.then(() => this.exec(words));
    this.queue = next.catch(() => undefined);
    return next;
  }

  close(): void {
    const c = this.child;
    this.child = null;
    if (c) {
      c.stdin.end('quit\n');
      setTimeout(() => c.kill('SIGKILL'), 1_000).unref();
    }
  }

  private exec(words: readonly string[]): Promise<string> {
    const child = this.child ?? this.start();
    const marker = `__KF_END_${++this.seq}__`;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new AppError('LIBVIRT_UNREACHABLE', `libvirt does not answer: virsh ${words[0]} got no reply in ${Math.round(this.timeoutMs / 1000)} s.`, { detail: this.uri }));
      }, this.timeoutMs);
      this.pending = { marker, resolve, reject, timer };
      child.stdin.write(`${words.join(' ')}\necho ${marker}\n`);
    });
  }

  private start(): ChildProcessWithoutNullStreams {
    const child = spawn(this.file, ['-q', '-c', this.uri], { shell: false, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C', LANG: 'C' } });
    this.child = child;
    this.buf = '';
    if (child.pid) this.spawned.push(child.pid);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c: string) => this.onData(c));
    // Errors of a command ("error: failed to get domain") are not the answer; drained so the pipe never fills.
    child.stderr.resume();
    child.stdin.on('error', () => undefined);
    child.on('error', (e) => this.fail(new AppError('LIBVIRT_FAILED', `virsh could not be started: ${e.message}.`)));
    child.on('exit', () => {
      if (this.child === child) {
        this.child = null;
        this.fail(new AppError('LIBVIRT_FAILED', 'virsh exited while a command was waiting for its answer.', { detail: this.uri }));
      }
    });
    return child;
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    const p = this.pending;
    if (!p) {
      this.buf = '';
      return;
    }
    // The answer's end is the marker at the start of a line (the echoed command line has "echo " before it).
    const at = `\n${this.buf}`.indexOf(`\n${p.marker}`);
    if (at < 0) {
      if (this.buf.length > MAX_BUFFER) this.fail(new AppError('LIBVIRT_FAILED', 'virsh answered more than 8 MiB to one command.'));
      return;
    }
    const out = this.buf.slice(0, at);
    this.buf = this.buf.slice(at + p.marker.length);
    this.pending = null;
    clearTimeout(p.timer);
    p.resolve(out.split('\n').filter((l) => !l.startsWith('virsh # ')).join('\n'));
  }

  /** The waiting command fails and the process goes: its state (half an answer) is unknown. */
  private fail(e: Error): void {
    const p = this.pending;
    this.pending = null;
    const c = this.child;
    this.child = null;
    this.buf = '';
    c?.kill('SIGKILL');
    if (p) {
      clearTimeout(p.timer);
      p.reject(e);
    }
  }
}
