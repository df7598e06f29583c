import { request, type IncomingMessage, type RequestOptions } from 'node:http';
import type { Duplex } from 'node:stream';
import { AppError, describeError } from '../../errors.js';

export interface PeerHttpResponse {
  status: number;
  contentType: string;
  body: unknown;
}

export interface PeerRequestOptions {
  body?: unknown;
  /** The user nginx authenticated here; the peer records it on the jobs it runs for us. */
  user?: string | null;
  timeoutMs?: number;
  /** Who asks, for the peer's log. */
  via: string;
}

type OpenTunnel = () => Promise<Duplex>;

const DEFAULT_TIMEOUT_MS = 8_000;
const MAX_BODY = 8 * 1024 * 1024;

/**
 * HTTP to a peer's kvm-ferry API through an SSH tunnel: the peer's manager stays on
 * its loopback, and the pinned host key authenticates the peer for us.
 */
export class PeerManagerClient {
  /** `hostHeader`: the address the tunnel reaches the peer's manager at, as the peer answers to it. */
  constructor(
    private readonly peerName: string,
    private readonly openTunnel: OpenTunnel,
    private readonly hostHeader = '127.0.0.1',
    /** The pair's shared secret from join (adapters/files/peer-credentials.ts): proves the via label. */
    private readonly credential: () => string | null = () => null,
  ) {}

  async json(method: string, path: string, opts: PeerRequestOptions): Promise<PeerHttpResponse> {
    const res = await this.open(method, path, opts);
    const chunks: Buffer[] = [];
    let size = 0;
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        res.destroy();
        reject(new AppError('NODE_UNREACHABLE', `Node ${this.peerName} did not answer within ${Math.round(timeoutMs / 1000)} s.`));
      }, timeoutMs);
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) res.destroy(new Error('response too large'));
        else chunks.push(c);
      });
      res.on('error', (e) => {
        clearTimeout(timer);
        reject(this.unreachable(e));
      });
      res.on('end', () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        const contentType = String(res.headers['content-type'] ?? '');
        let body: unknown = text;
        if (contentType.includes('json')) {
          try {
            body = JSON.parse(text);
          } catch {
            return reject(new AppError('NODE_UNREACHABLE', `Node ${this.peerName} answered with malformed JSON.`, { detail: text.slice(0, 500) }));
          }
        }
        resolve({ status: res.statusCode ?? 502, contentType, body });
      });
    });
  }

  /** The raw response, for streams (Server-Sent Events) that are passed on as they arrive. */
  open(method: string, path: string, opts: PeerRequestOptions): Promise<IncomingMessage> {
    const payload = opts.body === undefined ? null : Buffer.from(JSON.stringify(opts.body));
    const headers: Record<string, string> = { accept: 'application/json, text/event-stream', 'x-kvm-ferry-via': opts.via };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    if (opts.user) headers['x-remote-user'] = opts.user;
    const cred = this.credential();
    if (cred) headers['x-kvm-ferry-peer-auth'] = cred;
    const connectTimeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const req = request({
        method,
        path,
        host: 'peer',
        headers: { ...headers, host: this.hostHeader },
        createConnection: (_o: unknown, cb: (err: Error | null, s?: Duplex) => void) => {
          this.openTunnel().then((s) => cb(null, asSocket(s)), (e: unknown) => cb(this.tunnelError(e)));
          return undefined;
        },
      } as unknown as RequestOptions);
      const timer = setTimeout(() => req.destroy(new AppError('NODE_UNREACHABLE', `Node ${this.peerName} did not answer within ${Math.round(connectTimeoutMs / 1000)} s.`)), connectTimeoutMs);
      req.on('response', (res) => {
        clearTimeout(timer);
        resolve(res);
      });
      req.on('error', (e) => {
        clearTimeout(timer);
        reject(this.unreachable(e));
      });
      req.end(payload ?? undefined);
    });
  }

  /** SSH worked but nothing listens behind it: the peer's manager is not running. */
  private tunnelError(e: unknown): AppError {
    if (e instanceof AppError && e.message.includes('refused to open a tunnel')) {
      return new AppError('NODE_UNREACHABLE', `kvm-ferry does not answer on node ${this.peerName}; start it there (systemctl start kvm-ferry).`, { detail: e.detail ?? e.message });
    }
    return this.unreachable(e);
  }

  private unreachable(e: unknown): AppError {
    if (e instanceof AppError) return e;
    const text = describeError(e);
    const hint = /ECONNREFUSED|Connection refused|open failed|administratively prohibited/i.test(text)
      ? `kvm-ferry does not answer on node ${this.peerName}; start it there.`
      : `Node ${this.peerName}'s kvm-ferry could not be reached.`;
    return new AppError('NODE_UNREACHABLE', hint, { detail: text });
  }
}

/** http.ClientRequest pokes a few net.Socket methods that an SSH channel lacks. */
function asSocket(s: Duplex): Duplex {
  const sock = s as Duplex & Record<string, unknown>;
  for (const m of ['setNoDelay', 'setKeepAlive', 'ref', 'unref']) if (typeof sock[m] !== 'function') sock[m] = () => sock;
  if (typeof sock.setTimeout !== 'function') sock.setTimeout = () => sock;
  return s;
}
