import { randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { isValidNodeName } from '../domain/names.js';

/** nginx adds this header with the secret; nothing else can know it (file mode 0600, root). */
export const PROXY_HEADER = 'x-kvm-ferry-proxy';
/** A peer's manager names itself in this header when it forwards a request through its SSH tunnel. */
export const VIA_HEADER = 'x-kvm-ferry-via';
/** … and proves it with the pair's shared secret from join. */
export const PEER_AUTH_HEADER = 'x-kvm-ferry-peer-auth';

const LOOPBACK_NAMES = new Set(['127.0.0.1', 'localhost', '[::1]']);
const USER_RE = /^[\x21-\x7e]{1,128}$/;

/**
 * The secret nginx proves itself with, in <dataDir>/proxy.key. Created on first start
 * (or by scripts/install-site.sh, which also writes it into nginx); never logged.
 */
export function loadProxySecret(dataDir: string): string {
  const path = join(dataDir, 'proxy.key');
  const read = (): string => {
    const s = readFileSync(path, 'utf8').trim();
    if (!/^[A-Za-z0-9_-]{32,128}$/.test(s)) throw new Error(`${path} does not hold a proxy secret (32–128 letters, digits, - or _); remove it to have a new one made`);
    return s;
  };
  try {
    return read();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  mkdirSync(dataDir, { recursive: true });
  try {
    const fd = openSync(path, 'wx', 0o600);
    writeSync(fd, `${randomBytes(32).toString('base64url')}\n`);
    closeSync(fd);
  } catch (e) {
    // Another process (the stats daemon, install-site.sh) made it between our read and write.
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  return read();
}

/** One request header as a string (the first, when a client sent it twice). */
export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The name part of a Host header: "a.example:443" → "a.example", "[::1]:80" → "[::1]". */
export function hostName(host: string | undefined): string | null {
  if (!host) return null;
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:\[\]\s]+)(?::\d{1,5})?$/.exec(host.trim());
  return m ? m[1]!.toLowerCase() : null;
}

/**
 * Who may say what. Only nginx (holding the secret) names the user and the forwarded
 * host, and nginx has already matched the name against its server_name. Anything else
 * reaching the port directly must use a loopback name, the listen address or a
 * configured name, which shuts out DNS rebinding (the browser sends the attacker's name).
 * A peer's forwarded request is labelled `peer:<name>` only when it carries the secret
 * that node pair shared at join (`credentialOf`); a peer added by hand, before join
 * existed, has none, and its label is then the peer's word, as before.
 */
export class RequestTrust {
  private readonly secret: Buffer;
  private readonly hosts: Set<string>;

  constructor(
    secret: string,
    allowedHosts: string[],
    listenHost: string,
    private readonly isPeer: (name: string) => boolean,
    private readonly credentialOf: (name: string) => string | null = () => null,
  ) {
    this.secret = Buffer.from(secret);
    this.hosts = new Set([...LOOPBACK_NAMES, ...allowedHosts.map((h) => h.toLowerCase())]);
    if (listenHost !== '0.0.0.0' && listenHost !== '::') this.hosts.add(listenHost.includes(':') ? `[${listenHost}]` : listenHost);
  }

  fromProxy(req: IncomingMessage): boolean {
    const got = header(req, PROXY_HEADER);
    if (!got) return false;
    const b = Buffer.from(got);
    return b.length === this.secret.length && timingSafeEqual(b, this.secret);
  }

  /** Null when allowed; else the name that was refused (or "" for none). */
  refusedHost(req: IncomingMessage): string | null {
    if (this.fromProxy(req)) return null;
    const name = hostName(header(req, 'host'));
    return name && this.hosts.has(name) ? null : (header(req, 'host') ?? '');
  }

  /** The user for jobs and logs: nginx's, or the forwarding peer's; never a header anyone else set. */
  user(req: IncomingMessage): string | null {
    const claimed = header(req, 'x-remote-user');
    const u = claimed && USER_RE.test(claimed) ? claimed : null;
    if (this.fromProxy(req)) return u;
    const via = header(req, VIA_HEADER);
    if (via && isValidNodeName(via) && this.isPeer(via)) {
      const cred = this.credentialOf(via);
      if (cred !== null) {
        const got = Buffer.from(header(req, PEER_AUTH_HEADER) ?? '');
        const want = Buffer.from(cred);
        if (got.length !== want.length || !timingSafeEqual(got, want)) return null;
      }
      return u && !u.startsWith('peer:') ? `peer:${via}/${u}` : `peer:${via}`;
    }
    return null;
  }

  /** X-Forwarded-Host, believed from nginx only. */
  forwardedHost(req: IncomingMessage): string | undefined {
    return this.fromProxy(req) ? header(req, 'x-forwarded-host') : undefined;
  }
}
