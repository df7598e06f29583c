import type { NextFunction, Request, Response } from 'express';
import { AppError } from '../errors.js';
import type { RequestTrust } from './proxy-trust.js';

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Browsers resend cached basic-auth credentials on cross-site requests, so a state
 * change must come from this origin: Sec-Fetch-Site when the browser sends it,
 * else Origin against Host. Scripts (curl) send neither and pass.
 */
export function sameOriginOnly(trust: RequestTrust) {
  return (req: Request, _res: Response, next: NextFunction): void => checkSameOrigin(trust, req, next);
}

/**
 * The same rule for a read that carries the inventory of every node (the /events stream):
 * another site's page must not be able to open it with the user's credentials.
 */
export function sameOriginRead(trust: RequestTrust) {
  return (req: Request, _res: Response, next: NextFunction): void => checkSameOrigin(trust, req, next, true);
}

function checkSameOrigin(trust: RequestTrust, req: Request, next: NextFunction, always = false): void {
  if (!always && !UNSAFE.has(req.method)) return next();
  const site = req.get('sec-fetch-site');
  if (site && site !== 'same-origin' && site !== 'none') {
    return next(new AppError('CSRF_REJECTED', 'Refused a cross-site request; use kvm-ferry from its own page.'));
  }
  const origin = req.get('origin');
  if (origin && origin !== 'null') {
    let host: string;
    try {
      host = new URL(origin).host;
    } catch {
      return next(new AppError('CSRF_REJECTED', 'Refused a request with a malformed Origin header.'));
    }
    const expected = trust.forwardedHost(req) ?? req.get('host');
    if (host !== expected) return next(new AppError('CSRF_REJECTED', 'Refused a cross-site request; use kvm-ferry from its own page.'));
  } else if (origin === 'null') {
    return next(new AppError('CSRF_REJECTED', 'Refused a request from an opaque origin.'));
  }
  next();
}

/** API bodies are JSON or form-encoded; anything else is refused before parsing. */
export function apiContentTypes(req: Request, _res: Response, next: NextFunction): void {
  const hasBody = Number(req.get('content-length') ?? 0) > 0 || req.get('transfer-encoding') !== undefined;
  if (UNSAFE.has(req.method) && hasBody && !req.is(['application/json', 'application/x-www-form-urlencoded'])) {
    return next(new AppError('UNSUPPORTED_MEDIA_TYPE', 'Send the request body as application/json.'));
  }
  next();
}
