import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { WebSocket } from 'ws';
import { parseConfig, type Config } from '../../src/config.js';
import { compose, type Composed } from '../../src/compose.js';
import { createApp } from '../../src/app.js';
import { silentLogger } from '../../src/log.js';
import type { CommandRecord } from '../../src/adapters/process/run-command.js';
import { attachConsoleWebsocket, type ConsoleSockets } from '../../src/web/console-ws.js';
import type { Fixture } from './fixture.js';

export interface ConsoleTestApp {
  url: string;
  deps: Composed;
  config: Config;
  sockets: ConsoleSockets;
  /** The injected clock: tests move it forward instead of sleeping. */
  clock: { ms: number };
  /** Every command started, locally or on a peer over SSH ("beta:virsh"). */
  commands: CommandRecord[];
  close(): Promise<void>;
}

/** A real manager on loopback, as main.ts builds it: app + console websocket on one http.Server, with a test clock. */
export async function startConsoleApp(f: Pick<Fixture, 'uri' | 'imageDir' | 'isoDir' | 'dataDir'>, overrides: Record<string, unknown> = {}): Promise<ConsoleTestApp> {
  const config = parseConfig({ nodeName: 'alpha', libvirtUri: f.uri, dataDir: f.dataDir, imageDir: f.imageDir, isoDir: f.isoDir, vmNetwork: 'none', serialLogDir: 'none', ...overrides });
  const clock = { ms: Date.now() };
  const commands: CommandRecord[] = [];
  const deps = compose(config, silentLogger, { now: () => clock.ms, onCommand: (r) => commands.push(r) });
  const server: Server = await new Promise((resolve) => {
    const s = createApp(deps).listen(0, '127.0.0.1', () => resolve(s));
  });
  const sockets = attachConsoleWebsocket(server, deps);
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`, deps, config, sockets, clock, commands,
    async close() {
      sockets.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await deps.close();
    },
  };
}

export interface WsOutcome {
  /** HTTP status when the handshake itself was refused. */
  httpStatus: number | null;
  closeCode: number | null;
  closeReason: string;
  /** Bytes received before the close (or until `untilBytes` arrived). */
  received: Buffer;
}

/** Opens the console websocket with a real `ws` client; resolves on close, refusal, or once `untilBytes` arrived. */
export function openConsoleWs(appUrl: string, wsPath: string, opts: { origin?: string; untilBytes?: number; timeoutMs?: number } = {}): Promise<WsOutcome & { ws: WebSocket }> {
  const ws = new WebSocket(appUrl.replace(/^http/, 'ws') + wsPath, opts.origin ? { origin: opts.origin } : {});
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`websocket gave no outcome within ${opts.timeoutMs ?? 10_000} ms`)), opts.timeoutMs ?? 10_000);
    const done = (o: Partial<WsOutcome>) => {
      clearTimeout(timer);
      resolve({ ws, httpStatus: null, closeCode: null, closeReason: '', received: Buffer.concat(chunks), ...o });
    };
    ws.on('unexpected-response', (_req, res) => done({ httpStatus: res.statusCode ?? 0 }));
    ws.on('message', (d: Buffer) => {
      chunks.push(d);
      if (opts.untilBytes && Buffer.concat(chunks).length >= opts.untilBytes) done({});
    });
    ws.on('close', (code, reason) => done({ closeCode: code, closeReason: reason.toString() }));
    ws.on('error', (e) => {
      if (!('statusCode' in e)) reject(e);
    });
  });
}

/**
 * Asks `baseUrl`'s manager for a console ticket for node/vm and returns the first 12
 * bytes that arrive on its websocket: "RFB 003.008\n" when the VM's real VNC server
 * answered through the proxy. Usable against any manager, e.g. a lab node's URL.
 */
export async function consoleGreeting(baseUrl: string, node: string, vm: string): Promise<string> {
  const res = await fetch(`${baseUrl}/api/nodes/${encodeURIComponent(node)}/vms/${encodeURIComponent(vm)}/console`, { method: 'POST' });
  const body = (await res.json()) as { wsPath?: string; error?: { message: string } };
  if (res.status !== 201 || !body.wsPath) throw new Error(`no console ticket (${res.status}): ${body.error?.message ?? ''}`);
  const r = await openConsoleWs(baseUrl, body.wsPath, { untilBytes: 12, timeoutMs: 30_000 });
  r.ws.close();
  if (r.closeCode !== null) throw new Error(`console closed (${r.closeCode}): ${r.closeReason}`);
  return r.received.subarray(0, 12).toString();
}
