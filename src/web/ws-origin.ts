import type { IncomingMessage } from 'node:http';

/**
 * Browsers always send Origin on a websocket handshake and do not apply CORS to it,
 * so a page on another site could open a console with the user's cached basic-auth
 * credentials; only this origin may. Clients without Origin (scripts) pass: the
 * one-time ticket is the check for them.
 */
export function wsOriginAllowed(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return false;
  }
  const forwarded = header(req, 'x-forwarded-host');
  const expected = forwarded && fromLoopback(req) ? forwarded : header(req, 'host');
  return host === expected;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function fromLoopback(req: IncomingMessage): boolean {
  const a = req.socket.remoteAddress ?? '';
  return a === '127.0.0.1' || a === '::1' || a === '::ffff:127.0.0.1';
}
