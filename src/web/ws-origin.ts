import type { IncomingMessage } from 'node:http';
import { header, type RequestTrust } from './proxy-trust.js';

/**
 * Browsers always send Origin on a websocket handshake and do not apply CORS to it,
 * so a page on another site could open a console with the user's cached basic-auth
 * credentials; only this origin may. Clients without Origin (scripts) pass: the
 * one-time ticket is the check for them.
 */
export function wsOriginAllowed(req: IncomingMessage, trust: RequestTrust): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return false;
  }
  const expected = trust.forwardedHost(req) ?? header(req, 'host');
  return host === expected;
}

