import type { Request } from 'express';

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

/** The reverse proxy is the only one allowed to tell us who the user is. */
export function isFromLoopback(req: Request): boolean {
  return LOOPBACK.has(req.socket.remoteAddress ?? '');
}

/** nginx passes the basic-auth user as X-Remote-User; trusted only from loopback. */
export function requestUser(req: Request): string | null {
  if (!isFromLoopback(req)) return null;
  const u = req.get('x-remote-user');
  if (!u || u.length > 128 || !/^[\x21-\x7e]+$/.test(u)) return null;
  return u;
}

export function bodyOf(req: Request): Record<string, unknown> {
  const b: unknown = req.body;
  return typeof b === 'object' && b !== null && !Array.isArray(b) ? (b as Record<string, unknown>) : {};
}

export function queryOf(req: Request): Record<string, unknown> {
  return req.query as Record<string, unknown>;
}
