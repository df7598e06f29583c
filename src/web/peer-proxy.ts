import type { NextFunction, Request, Response } from 'express';
import type { AppDeps } from '../app.js';
import { AppError } from '../errors.js';
import { requestUser } from './request-context.js';

const LONG_TIMEOUT_MS = 11 * 60_000;

/**
 * `/api/nodes/<peer>/…` is answered by that peer's own kvm-ferry: the request goes
 * through the SSH tunnel as it came (same path, query and JSON body), with the user
 * nginx authenticated here. Streams (job events) are passed on as they arrive.
 */
export function forwardToPeer(deps: Pick<AppDeps, 'peers' | 'node'>) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const name = String(req.params.node);
    if (name === deps.node.name) return next();
    const peer = deps.peers.get(name);
    if (!peer) return next(new AppError('NODE_NOT_FOUND', `Node ${name} is not known to this manager.`));
    const blocked = await peer.blockedReason();
    if (blocked) return next(new AppError('NODE_UNREACHABLE', blocked));
    const hasBody = !['GET', 'HEAD', 'DELETE'].includes(req.method);
    // ?wait=N may hold the request for minutes; everything else answers in seconds.
    const timeoutMs = req.query.wait !== undefined || req.path.endsWith('/events') ? LONG_TIMEOUT_MS : undefined;
    try {
      const upstream = await peer.api.open(req.method, req.originalUrl, {
        via: deps.node.name,
        user: requestUser(req),
        ...(hasBody ? { body: req.body ?? {} } : {}),
        ...(timeoutMs ? { timeoutMs } : {}),
      });
      res.status(upstream.statusCode ?? 502);
      for (const h of ['content-type', 'cache-control', 'location', 'x-accel-buffering']) {
        const v = upstream.headers[h];
        if (v !== undefined) res.set(h, String(v));
      }
      if (String(upstream.headers['content-type'] ?? '').startsWith('text/event-stream')) res.flushHeaders();
      req.on('close', () => upstream.destroy());
      upstream.pipe(res);
    } catch (e) {
      next(e);
    }
  };
}
