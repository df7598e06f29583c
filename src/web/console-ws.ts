import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { CONSOLE_CLOSE, closeReason } from '../domain/console.js';
import { isValidNodeName, isValidVmName } from '../domain/names.js';
import type { Logger } from '../log.js';
import { CONSOLE_WS_PATH, type ConsoleService } from '../services/console/console-service.js';
import { wsOriginAllowed } from './ws-origin.js';
import type { RequestTrust } from './proxy-trust.js';

const MAX_SESSIONS = 32;
/** Above this many bytes queued towards the browser, stop reading from the VNC server. */
const HIGH_WATER = 4 * 1024 * 1024;
const MAX_CLIENT_MESSAGE = 1024 * 1024;
/** A VNC client waits for the server's greeting; more than this before it is not a VNC client. */
const MAX_EARLY_BYTES = 64 * 1024;
/**
 * A still screen sends nothing: pings keep a reverse proxy's read timeout from cutting
 * an idle console, and a browser that stopped answering two of them is gone.
 */
const PING_INTERVAL_MS = 30_000;

export interface ConsoleSockets {
  readonly sessions: number;
  close(): void;
}

/**
 * Serves `/console/ws?node=&vm=&ticket=` on the HTTP server: checks Origin, redeems the
 * one-time ticket, and only then opens the VM's VNC server and copies raw bytes both
 * ways. Refusals after the handshake close the socket with a CONSOLE_CLOSE code and a
 * sentence, because a browser cannot see why a handshake was refused.
 */
export function attachConsoleWebsocket(server: Server, deps: { console: ConsoleService; log: Logger; trust: RequestTrust }): ConsoleSockets {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_CLIENT_MESSAGE, perMessageDeflate: false });
  const live = new Set<WebSocket>();
  const alive = new WeakMap<WebSocket, boolean>();

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== CONSOLE_WS_PATH) {
      // Another upgrade handler may own this path; answer only when nobody else listens.
      if (server.listenerCount('upgrade') === 1) refuse(socket, 404, 'No websocket endpoint here.');
      return;
    }
    if (deps.trust.refusedHost(req) !== null) return refuse(socket, 421, 'Refused a console connection for a host name kvm-ferry does not answer to.');
    if (!wsOriginAllowed(req, deps.trust)) return refuse(socket, 403, 'Refused a console connection from another site.');
    const node = url.searchParams.get('node');
    const vm = url.searchParams.get('vm');
    const ticket = url.searchParams.get('ticket');
    if (!isValidNodeName(node) || !isValidVmName(vm) || !ticket) return refuse(socket, 400, 'A console connection needs node, vm and ticket.');

    wss.handleUpgrade(req, socket, head, (ws) => {
      if (live.size >= MAX_SESSIONS) return ws.close(CONSOLE_CLOSE.TOO_MANY, 'Too many open consoles on this node; close one and reconnect.');
      // A bad frame from a browser must end that console, never the manager.
      ws.on('error', (e) => deps.log.info('console websocket error', { node, vm, error: e.message }));
      live.add(ws);
      alive.set(ws, true);
      ws.on('pong', () => alive.set(ws, true));
      ws.once('close', () => live.delete(ws));
      void session(ws, node, vm, ticket, req);
    });
  };

  async function session(ws: WebSocket, node: string, vm: string, ticket: string, req: IncomingMessage) {
    // Bytes the browser sends before the VNC stream is open wait here, in order.
    const early: Buffer[] = [];
    let earlyBytes = 0;
    const collect = (d: Buffer) => {
      earlyBytes += d.length;
      if (earlyBytes > MAX_EARLY_BYTES) ws.terminate();
      else early.push(d);
    };
    ws.on('message', collect);
    const r = await deps.console.connect(node, vm, ticket);
    ws.off('message', collect);
    const who = { node, vm, user: deps.trust.user(req), from: req.socket.remoteAddress };
    if (!r.ok) {
      deps.log.info('console refused', { ...who, code: r.closeCode, reason: r.reason });
      if (ws.readyState === ws.OPEN) ws.close(r.closeCode, closeReason(r.reason));
      return;
    }
    const vnc = r.stream;
    if (ws.readyState !== ws.OPEN) return void vnc.destroy();
    deps.log.info('console opened', { ...who, via: r.target.peer ? 'ssh' : 'local', port: r.target.port });
    pipe(ws, vnc, early, `The VNC server of VM ${vm} closed the connection: the VM stopped or moved.`);
    ws.once('close', () => deps.log.info('console closed', who));
  }

  const pinger = setInterval(() => {
    for (const ws of live) {
      if (alive.get(ws) === false) {
        ws.terminate();
        continue;
      }
      alive.set(ws, false);
      ws.ping();
    }
  }, PING_INTERVAL_MS);
  pinger.unref();

  server.on('upgrade', onUpgrade);
  return {
    get sessions() {
      return live.size;
    },
    close() {
      server.off('upgrade', onUpgrade);
      clearInterval(pinger);
      for (const ws of live) ws.close(CONSOLE_CLOSE.SERVER_STOPPING, 'The manager is restarting; reconnect in a moment.');
      wss.close();
    },
  };
}

function pipe(ws: WebSocket, vnc: Duplex, early: Buffer[], closedText: string): void {
  for (const d of early) vnc.write(d);
  vnc.on('data', (d: Buffer) => {
    ws.send(d, { binary: true }, () => {
      if (vnc.isPaused() && ws.bufferedAmount < HIGH_WATER / 4) vnc.resume();
    });
    if (ws.bufferedAmount > HIGH_WATER) vnc.pause();
  });
  ws.on('message', (d: Buffer, isBinary: boolean) => {
    if (!isBinary) return;
    if (!vnc.write(d)) {
      ws.pause();
      vnc.once('drain', () => ws.resume());
    }
  });
  let ended = false;
  const vncGone = () => {
    if (ended) return;
    ended = true;
    if (ws.readyState === ws.OPEN) ws.close(CONSOLE_CLOSE.VNC_CLOSED, closeReason(closedText));
  };
  vnc.once('end', vncGone);
  vnc.once('close', vncGone);
  vnc.on('error', vncGone);
  ws.once('close', () => {
    ended = true;
    vnc.destroy();
  });
}


function refuse(socket: Duplex, status: number, sentence: string): void {
  const body = JSON.stringify({ error: { message: sentence } });
  socket.end(`HTTP/1.1 ${status} ${status === 403 ? 'Forbidden' : status === 421 ? 'Misdirected Request' : status === 404 ? 'Not Found' : 'Bad Request'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
