import { readFile, stat } from 'node:fs/promises';
import type { Duplex, Readable } from 'node:stream';
import { Client, type ConnectConfig } from 'ssh2';
import type { PeerConfig } from '../../config.js';
import { AppError } from '../../errors.js';
import type { CommandRecord, CommandResult } from '../process/run-command.js';
import { fingerprintOf, hostKeyAlgorithmsFor, parsePinnedHostKey } from './host-key.js';
import { quoteArgv } from './shell-quote.js';

export interface PeerExecOptions {
  timeoutMs?: number;
  check?: boolean;
  failureMessage?: string;
  /** Streamed to the remote command's stdin (e.g. a disk image into dd). */
  stdin?: Readable;
  /** Closes the remote command (and stops reading stdin) when aborted. */
  signal?: AbortSignal;
}

const CONNECT_TIMEOUT_MS = 5_000;
const MAX_OUTPUT = 4 * 1024 * 1024;

const IDLE_CLOSE_MS = 3_000;
const MAX_CHANNELS = 8;

interface Pooled {
  client: Client;
  users: number;
  idle?: NodeJS.Timeout;
  dead: boolean;
}

/**
 * Runs commands on a peer node over ssh2, with the peer's host key pinned from the
 * config (a mismatch is refused before authentication). Calls made close together
 * share one connection (one channel each): a pre-flight's dozen questions or a page's
 * status and VM list then pay for one handshake. The connection closes after a few
 * idle seconds, and one that failed is never reused.
 */
export class PeerShell {
  private pooled: Pooled | null = null;
  private connecting: Promise<Pooled> | null = null;

  constructor(private readonly peer: PeerConfig, private readonly onRecord?: (r: CommandRecord) => void) {}

  /** A connection for one call; `release` must be called when the call's channel is done. */
  private async acquire(): Promise<{ client: Client; release: () => void }> {
    let p = this.pooled && !this.pooled.dead && this.pooled.users < MAX_CHANNELS ? this.pooled : null;
    if (!p) {
      if (!this.connecting) {
        this.connecting = this.connect().then(
          (client) => {
            const fresh: Pooled = { client, users: 0, dead: false };
            const drop = () => {
              fresh.dead = true;
              if (this.pooled === fresh) this.pooled = null;
            };
            client.on('close', drop);
            client.on('error', drop);
            this.pooled = fresh;
            return fresh;
          },
        ).finally(() => (this.connecting = null));
      }
      p = await this.connecting;
      if (p.users >= MAX_CHANNELS) return this.acquire();
    }
    const conn = p;
    clearTimeout(conn.idle);
    conn.users++;
    let released = false;
    return {
      client: conn.client,
      release: () => {
        if (released) return;
        released = true;
        conn.users--;
        if (conn.users === 0) {
          conn.idle = setTimeout(() => {
            if (conn.users === 0) {
              conn.dead = true;
              if (this.pooled === conn) this.pooled = null;
              conn.client.end();
            }
          }, IDLE_CLOSE_MS);
          conn.idle.unref();
        }
      },
    };
  }

  async exec(file: string, args: readonly string[], opts: PeerExecOptions = {}): Promise<CommandResult> {
    const command = quoteArgv(file, args);
    const record: CommandRecord = { file: `${this.peer.name}:${file}`, args: [...args], startedAt: Date.now() };
    this.onRecord?.(record);
    const { client, release } = await this.acquire();
    try {
      const result = await runOn(client, command, opts.timeoutMs ?? 60_000, opts);
      record.exitCode = result.exitCode;
      record.durationMs = Date.now() - record.startedAt;
      if (result.exitCode !== 0 && opts.check !== false) {
        throw new AppError('COMMAND_FAILED', opts.failureMessage ?? `${file} failed on node ${this.peer.name}.`, {
          detail: [`${this.peer.name}$ ${command}`, result.stderr.trim() || result.stdout.trim()].join('\n').slice(0, 8000),
        });
      }
      return result;
    } finally {
      release();
    }
  }

  /**
   * A TCP stream to host:port as seen from the peer (e.g. its own 127.0.0.1:8080 or a
   * VNC port), carried inside SSH: nothing on the peer has to listen on the network.
   * Ending the stream ends the SSH connection.
   */
  async openTcp(host: string, port: number): Promise<Duplex> {
    const { client, release } = await this.acquire();
    return new Promise((resolve, reject) => {
      client.forwardOut('127.0.0.1', 0, host, port, (err, channel) => {
        if (err) {
          release();
          return reject(new AppError('NODE_UNREACHABLE', `Node ${this.peer.name} refused to open a tunnel to ${host}:${port}.`, { detail: `${host}:${port} on ${this.peer.name}: ${err.message}` }));
        }
        channel.once('close', release);
        resolve(channel);
      });
    });
  }

  /**
   * A new connection, authenticated and closed: proof that SSH works now (sshd up, host
   * key still the pinned one), which a shared connection opened earlier cannot give.
   */
  async probe(): Promise<void> {
    try {
      (await this.connect()).end();
    } catch (e) {
      // What was true when the shared connection opened is not any more: stop using it.
      const stale = this.pooled;
      this.pooled = null;
      if (stale) {
        stale.dead = true;
        stale.client.end();
      }
      throw e;
    }
  }

  private async connect(): Promise<Client> {
    const p = this.peer;
    const pinned = parsePinnedHostKey(p.hostKey);
    if (!pinned) {
      throw new AppError('NODE_UNREACHABLE', `The pinned SSH host key for node ${p.name} is malformed; fix peers[].hostKey in the config.`);
    }
    let privateKey: Buffer;
    try {
      // Like ssh(1): a key others can read may already be someone else's; refuse to use it.
      const { mode } = await stat(p.sshKeyFile);
      if (mode & 0o077) {
        throw new AppError('NODE_UNREACHABLE', `The SSH key ${p.sshKeyFile} for node ${p.name} is readable by other users; run chmod 600 ${p.sshKeyFile}.`, {
          detail: `mode ${(mode & 0o777).toString(8)}`,
        });
      }
      privateKey = await readFile(p.sshKeyFile);
    } catch (e) {
      if (e instanceof AppError) throw e;
      throw new AppError('NODE_UNREACHABLE', `Cannot read the SSH key ${p.sshKeyFile} for node ${p.name}.`, { detail: (e as Error).message });
    }
    let seenKey: Buffer | null = null;
    const config: ConnectConfig = {
      host: p.sshHost,
      port: p.sshPort,
      username: p.sshUser,
      privateKey,
      readyTimeout: CONNECT_TIMEOUT_MS,
      // A shared connection whose link died must be noticed before the next call trusts it.
      keepaliveInterval: 2_000,
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer) => {
        seenKey = key;
        return key.equals(pinned.blob);
      },
      algorithms: { serverHostKey: hostKeyAlgorithmsFor(pinned.type) as never },
    };
    const client = new Client();
    return new Promise((resolve, reject) => {
      client.once('ready', () => resolve(client));
      // `on`, not `once`: a handshake that times out can be followed by "Connection lost before
      // handshake" when the far end finally closes; without a listener that error would crash the manager.
      let failed = false;
      client.on('error', (err: Error & { level?: string; code?: string }) => {
        if (failed) return;
        failed = true;
        client.end();
        reject(this.explain(err, seenKey, pinned.blob));
      });
      client.connect(config);
    });
  }

  private explain(err: Error & { level?: string; code?: string }, seen: Buffer | null, pinned: Buffer): AppError {
    const p = this.peer;
    const where = `${p.sshHost}:${p.sshPort}`;
    if (seen && !seen.equals(pinned)) {
      return new AppError('NODE_UNREACHABLE', `Node ${p.name}'s SSH host key does not match the pinned key; refusing to connect. If the server was reinstalled, update peers[].hostKey — otherwise the connection may be intercepted.`, {
        detail: `offered ${fingerprintOf(seen)}, pinned ${fingerprintOf(pinned)} (${where})`,
      });
    }
    if (err.level === 'client-authentication') {
      return new AppError('NODE_UNREACHABLE', `Node ${p.name} refused the SSH login as ${p.sshUser}; add the key ${p.sshKeyFile}.pub to its authorized_keys.`, { detail: err.message });
    }
    if (err.code === 'ECONNREFUSED') {
      return new AppError('NODE_UNREACHABLE', `Node ${p.name} refused the SSH connection on ${where}; is sshd running there?`, { detail: err.message });
    }
    if (err.level === 'client-timeout' || err.code === 'ETIMEDOUT' || err.code === 'EHOSTUNREACH' || err.code === 'ENETUNREACH') {
      return new AppError('NODE_UNREACHABLE', `Node ${p.name} did not answer on ${where}; check the network or VPN between the nodes.`, { detail: err.message });
    }
    return new AppError('NODE_UNREACHABLE', `SSH to node ${p.name} (${where}) failed.`, { detail: err.message });
  }
}

function runOn(client: Client, command: string, timeoutMs: number, io: Pick<PeerExecOptions, 'stdin' | 'signal'> = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, stream) => {
      if (err) return reject(new AppError('NODE_UNREACHABLE', 'The peer refused to run a command over SSH.', { detail: err.message }));
      let stdout = '';
      let stderr = '';
      const timer = setTimeout(() => {
        stream.close();
        reject(new AppError('COMMAND_FAILED', `A remote command did not finish within ${Math.round(timeoutMs / 1000)} s.`, { detail: command }));
      }, timeoutMs);
      stream.on('data', (d: Buffer) => {
        if (stdout.length < MAX_OUTPUT) stdout += d.toString('utf8');
      });
      stream.stderr.on('data', (d: Buffer) => {
        if (stderr.length < MAX_OUTPUT) stderr += d.toString('utf8');
      });
      const onAbort = () => {
        io.stdin?.unpipe(stream);
        io.stdin?.destroy();
        stream.close();
      };
      io.signal?.addEventListener('abort', onAbort, { once: true });
      if (io.stdin) {
        io.stdin.on('error', (e) => {
          stream.close();
          reject(new AppError('COMMAND_FAILED', 'Reading the data to send failed.', { detail: (e as Error).message }));
        });
        io.stdin.pipe(stream);
      } else {
        stream.end();
      }
      stream.on('close', (code: number | null) => {
        clearTimeout(timer);
        io.signal?.removeEventListener('abort', onAbort);
        resolve({ stdout, stderr, exitCode: code ?? -1 });
      });
    });
  });
}
