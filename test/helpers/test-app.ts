import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { parseConfig, type Config } from '../../src/config.js';
import { compose, type Composed } from '../../src/compose.js';
import { createApp } from '../../src/app.js';
import { silentLogger } from '../../src/log.js';
import type { CommandRecord } from '../../src/adapters/process/run-command.js';
import type { Fixture } from './fixture.js';

export interface TestApp {
  url: string;
  deps: Composed;
  config: Config;
  /** Every command the process adapter started, in order. */
  commands: CommandRecord[];
  close(): Promise<void>;
}

/** A real manager (real SQLite, real libvirt URI, real HTTP) on an ephemeral loopback port. */
export async function startTestApp(f: Pick<Fixture, 'uri' | 'imageDir' | 'isoDir' | 'dataDir'>, overrides: Record<string, unknown> = {}): Promise<TestApp> {
  const config = parseConfig({
    nodeName: 'alpha',
    libvirtUri: f.uri,
    dataDir: f.dataDir,
    imageDir: f.imageDir,
    isoDir: f.isoDir,
    vmNetwork: 'none',
    serialLogDir: 'none',
    // Never the host's /etc/pki: an invite makes the cluster's migration certificates there.
    migrationTlsDir: join(f.dataDir, 'pki-migrate'),
    ...overrides,
  });
  const commands: CommandRecord[] = [];
  const deps = compose(config, silentLogger, { onCommand: (r) => commands.push(r), sleep: () => new Promise((r) => setTimeout(r, 20)) });
  const server: Server = await new Promise((resolve) => {
    const s = createApp(deps).listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    deps,
    config,
    commands,
    async close() {
      await new Promise((r) => server.close(r));
      await deps.close();
    },
  };
}

export async function api(app: { url: string }, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(app.url + path, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? null : JSON.stringify(body),
    redirect: 'manual',
  });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* HTML or empty */
  }
  return { status: res.status, json, text, headers: res.headers };
}

/** The headers nginx adds for an authenticated user: X-Remote-User and the manager's proxy secret. */
export function fromNginx(app: { config: Config }, user: string): Record<string, string> {
  return { 'x-remote-user': user, 'x-kvm-ferry-proxy': readFileSync(join(app.config.dataDir, 'proxy.key'), 'utf8').trim() };
}
