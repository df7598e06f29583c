import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { NextFunction, Request, Response } from 'express';
import { AppError } from '../errors.js';
import { requestUser } from './request-context.js';

/** Field name of the hidden input views/partials/csrf.ejs puts into every POST form. */
export const CSRF_FIELD = '_csrf';
const MAX_AGE_MS = 12 * 3600_000;
/** Clocks of the page render and the POST are the same process, but allow a small step back (NTP). */
const SKEW_MS = 5 * 60_000;
const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Session-less form tokens: HMAC(secret, time | user). A cross-site page cannot read
 * ours, so it cannot learn a token, even though the browser attaches the cached
 * basic-auth credentials to its POST. Binding the nginx user stops one user's token
 * being replayed for another; the timestamp bounds how long a leaked token works.
 */
export class CsrfTokens {
  constructor(private readonly secret: Buffer, private readonly now: () => number = Date.now) {
    if (secret.length < 16) throw new Error('CSRF secret must be at least 16 bytes');
  }

  issue(user: string | null): string {
    const ts = this.now().toString(36);
    return `${ts}.${this.mac(ts, user)}`;
  }

  verify(token: unknown, user: string | null): boolean {
    if (typeof token !== 'string' || token.length > 100) return false;
    const m = /^([0-9a-z]{1,12})\.([A-Za-z0-9_-]{43})$/.exec(token);
    if (!m) return false;
    const [, ts, mac] = m as unknown as [string, string, string];
    const age = this.now() - parseInt(ts, 36);
    if (!(age >= -SKEW_MS && age <= MAX_AGE_MS)) return false;
    const want = Buffer.from(this.mac(ts, user));
    const got = Buffer.from(mac);
    return got.length === want.length && timingSafeEqual(got, want);
  }

  private mac(ts: string, user: string | null): string {
    return createHmac('sha256', this.secret).update(`kvm-ferry-form|${ts}|${user ?? ''}`).digest('base64url');
  }
}

/**
 * The secret lives in the data directory (mode 0600) so tokens in open pages survive a
 * restart of the manager; created on first use, never logged.
 */
export function loadCsrfSecret(dataDir: string): Buffer {
  const path = join(dataDir, 'csrf.key');
  try {
    return readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  mkdirSync(dataDir, { recursive: true });
  const secret = randomBytes(32);
  try {
    const fd = openSync(path, 'wx', 0o600);
    writeSync(fd, secret);
    closeSync(fd);
    return secret;
  } catch (e) {
    // Another process created it between our read and write: use theirs.
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return readFileSync(path);
    throw e;
  }
}

/**
 * For the server-rendered pages: gives every render a token (`csrfToken` for the
 * partial) and refuses a state-changing page request whose form lacks a valid one.
 * Must run after the urlencoded body parser.
 */
export function csrfForms(tokens: CsrfTokens) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const user = requestUser(req);
    res.locals.csrfToken = tokens.issue(user);
    if (!UNSAFE.has(req.method)) return next();
    const body: unknown = req.body;
    const token = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[CSRF_FIELD] : undefined;
    if (!tokens.verify(token, user)) {
      return next(new AppError('CSRF_REJECTED', 'The form has expired or did not come from this page; reload the page and try again.'));
    }
    next();
  };
}
