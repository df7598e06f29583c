import type { NextFunction, Request, Response } from 'express';
import { AppError } from '../errors.js';
import type { RequestTrust } from './proxy-trust.js';

const users = new WeakMap<Request, string | null>();

/**
 * First on every request: refuses a Host the manager does not answer to, and settles
 * once who the request is from (see RequestTrust), for requestUser() everywhere after.
 */
export function trustRequests(trust: RequestTrust) {
  return (req: Request, _res: Response, next: NextFunction): void => {
    const refused = trust.refusedHost(req);
    if (refused !== null) {
      return next(new AppError('HOST_REFUSED', `Refused a request for host "${refused.slice(0, 100)}"; kvm-ferry answers only to loopback, its listen address and the names in allowedHosts (or through nginx).`));
    }
    users.set(req, trust.user(req));
    next();
  };
}

/** The user nginx authenticated, or `peer:<name>` for a peer's forwarded request; null for anyone else. */
export function requestUser(req: Request): string | null {
  return users.get(req) ?? null;
}

export function bodyOf(req: Request): Record<string, unknown> {
  const b: unknown = req.body;
  return typeof b === 'object' && b !== null && !Array.isArray(b) ? (b as Record<string, unknown>) : {};
}

export function queryOf(req: Request): Record<string, unknown> {
  return req.query as Record<string, unknown>;
}
