import { Router } from 'express';
import type { AppDeps } from '../app.js';
import { loadConfig } from '../config.js';
import { badInput } from '../errors.js';
import { parseTtl } from '../domain/join/token.js';
import { JoinService } from '../services/join/join-service.js';
import { bodyOf } from './request-context.js';
import { toAppError } from './error-handler.js';

/**
 * invite / join / remove from the page and the JSON API: the same service as the CLI,
 * on the config file as it is now (the manager re-reads its peers from it afterwards).
 */
function withService<T>(deps: AppDeps, f: (s: JoinService) => Promise<T> | T): Promise<T> {
  const s = JoinService.open(loadConfig({ KVM_FERRY_CONFIG: deps.config.source }));
  return Promise.resolve(f(s)).finally(() => s.close());
}

type Body = Record<string, unknown>;
const str = (b: Body, k: string) => (typeof b[k] === 'string' ? (b[k] as string).trim() : '');

function inviteOpts(b: Body): { ttlMs?: number; addresses?: string[] } {
  const out: { ttlMs?: number; addresses?: string[] } = {};
  if (str(b, 'ttl')) {
    const t = parseTtl(str(b, 'ttl'));
    if (typeof t !== 'number') throw badInput('ttl', t.error.replace('--ttl', 'The lifetime'));
    out.ttlMs = t;
  }
  if (str(b, 'address')) out.addresses = [str(b, 'address')];
  return out;
}

const invite = (deps: AppDeps, b: Body) => withService(deps, (s) => s.invite(inviteOpts(b)));
const joinWith = (deps: AppDeps, b: Body) => {
  if (!str(b, 'token')) throw badInput('token', 'Paste the invite token printed by "kvm-ferry node invite" or the other node\'s "Add node" panel.');
  return withService(deps, (s) => s.join(str(b, 'token'), str(b, 'address') ? { address: str(b, 'address') } : {}));
};
const remove = (deps: AppDeps, b: Body) => withService(deps, (s) => s.remove(str(b, 'name')));

export function nodeJoinApiRoutes(deps: AppDeps): Router {
  const r = Router();
  r.post('/node/invite', async (req, res) => {
    const i = await invite(deps, bodyOf(req));
    deps.log.info('invite made', { id: i.id, expires: new Date(i.expiresAtMs).toISOString() });
    res.status(201).json({ token: i.token, expiresAt: new Date(i.expiresAtMs).toISOString() });
  });
  r.post('/node/join', async (req, res) => {
    const j = await joinWith(deps, bodyOf(req));
    deps.log.info('joined a cluster', { ...j });
    res.json(j);
  });
  r.post('/node/remove', async (req, res) => {
    const j = await remove(deps, bodyOf(req));
    deps.log.info('node removed', { name: str(bodyOf(req), 'name'), ...j });
    res.json(j);
  });
  return r;
}

export function nodeJoinPageRoutes(deps: AppDeps): Router {
  const r = Router();
  const page = (res: import('express').Response, extra: Record<string, unknown> = {}, status = 200) =>
    res.status(status).render('nodes', {
      nodeName: deps.node.name, peers: deps.peers.all().map((p) => ({ name: p.name, address: p.config.sshHost, hostKey: p.config.hostKey })),
      invite: null, joined: null, removed: null, error: null, ...extra,
    });
  r.get('/nodes', (_req, res) => page(res));
  const form = (path: string, run: (b: Body) => Promise<Record<string, unknown>>) =>
    r.post(path, async (req, res) => {
      try {
        page(res, await run(bodyOf(req)));
      } catch (e) {
        const err = toAppError(e, deps.log);
        page(res, { error: err }, err.httpStatus);
      }
    });
  form('/nodes/invite', async (b) => {
    const i = await invite(deps, b);
    return { invite: { token: i.token, expiresAt: new Date(i.expiresAtMs).toISOString() } };
  });
  form('/nodes/join', async (b) => ({ joined: await joinWith(deps, b) }));
  form('/nodes/remove', async (b) => ({ removed: { name: str(b, 'name'), ...(await remove(deps, b)) } }));
  return r;
}
