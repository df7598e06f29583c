import { randomBytes, randomInt } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { CommandResult } from '../process/run-command.js';
import { LINK_SINK_PERL, LINK_SINK_PORTS } from '../../domain/link-sink.js';

export interface LinkTestOptions {
  /** Stop sending after this long… */
  sendMs: number;
  /** …or after this many bytes, whichever comes first. */
  maxBytes: number;
  /** The sink gives up this long after it started. */
  sinkSec: number;
  /** Ports tried, from libvirt's migration range (open wherever migrations work). */
  portMin: number;
  portMax: number;
}

export const DEFAULT_LINK_TEST: LinkTestOptions = { sendMs: 2500, maxBytes: 64 * 1024 ** 2, sinkSec: 8, portMin: LINK_SINK_PORTS.min, portMax: LINK_SINK_PORTS.max };

export type RemoteExec = (file: string, args: readonly string[], opts: { timeoutMs: number; check: false }) => Promise<CommandResult>;

export interface LinkTestResult {
  bytes: number;
  seconds: number;
  bps: number;
}

export function parseSinkOutput(text: string): { bytes: number; seconds: number } | null {
  const m = /bytes=(\d+) secs=(\d+(?:\.\d+)?)/.exec(text);
  return m ? { bytes: Number(m[1]), seconds: Number(m[2]) } : null;
}

/**
 * Usable throughput from this node to `address` on the peer: a short timed transfer on the
 * route memory will take (through the tunnel when the data address is inside it). Bounded:
 * at most `sinkSec` on the peer plus the SSH round trips. Throws with a sentence on failure.
 */
export async function measureLink(exec: RemoteExec, address: string, opts: LinkTestOptions = DEFAULT_LINK_TEST): Promise<LinkTestResult> {
  const port = randomInt(opts.portMin, opts.portMax + 1);
  const sink = exec('perl', ['-e', LINK_SINK_PERL, address, String(port), String(opts.sinkSec)], { timeoutMs: (opts.sinkSec + 15) * 1000, check: false });
  let sinkDone = false;
  void sink.finally(() => (sinkDone = true)).catch(() => undefined);
  const socket = await connectRetrying(address, port, opts.sinkSec * 1000, () => sinkDone);
  if (socket) await send(socket, opts);
  const r = await sink;
  const parsed = parseSinkOutput(r.stdout);
  if (r.exitCode !== 0 || !parsed) throw new Error(`the link test to ${address}:${port} failed: ${(r.stderr || r.stdout).trim().split('\n')[0] || `exit ${r.exitCode}`}`);
  const bps = linkRate(parsed);
  if (bps === null) throw new Error(`the link test to ${address}:${port} moved too little data to measure`);
  return { ...parsed, bps };
}

/** Below this the sink's clock cannot time a transfer. */
const MIN_TIMED_SEC = 0.05;
/** A transfer at least this big that finished faster than that is a fast link, not a failure. */
const MIN_FAST_BYTES = 4 * 1024 ** 2;

/**
 * Bytes per second from the sink's count. A link so fast that the whole test (up to maxBytes)
 * arrived within MIN_TIMED_SEC (a 10 Gbit/s LAN, two namespaces on one host) is read as
 * bytes ÷ MIN_TIMED_SEC: a floor, already faster than a memory copy can use. Too little data
 * at all is no measurement (null).
 */
export function linkRate(r: { bytes: number; seconds: number }): number | null {
  if (r.bytes <= 0) return null;
  if (r.seconds > MIN_TIMED_SEC) return r.bytes / r.seconds;
  return r.bytes >= MIN_FAST_BYTES ? r.bytes / MIN_TIMED_SEC : null;
}

async function connectRetrying(address: string, port: number, withinMs: number, gaveUp: () => boolean): Promise<Socket | null> {
  const until = Date.now() + withinMs;
  while (Date.now() < until && !gaveUp()) {
    const s = await new Promise<Socket | null>((resolve) => {
      const sock = connect({ host: address, port });
      sock.once('connect', () => resolve(sock));
      sock.once('error', () => {
        sock.destroy();
        resolve(null);
      });
    });
    if (s) return s;
    await new Promise((r) => setTimeout(r, 150));
  }
  return null;
}

function send(socket: Socket, opts: LinkTestOptions): Promise<void> {
  // Random bytes: a compressing tunnel must not make the link look faster than it is.
  const chunk = randomBytes(256 * 1024);
  const stopAt = Date.now() + opts.sendMs;
  let sent = 0;
  return new Promise((resolve) => {
    const finish = () => {
      socket.removeAllListeners('drain');
      socket.end();
      socket.once('close', () => resolve());
      // The peer's deadline ends the test anyway; never wait on a dead socket for long.
      setTimeout(() => {
        socket.destroy();
        resolve();
      }, opts.sinkSec * 1000).unref();
    };
    socket.on('error', () => resolve());
    const pump = () => {
      while (Date.now() < stopAt && sent < opts.maxBytes) {
        sent += chunk.length;
        if (!socket.write(chunk)) return void socket.once('drain', pump);
      }
      finish();
    };
    pump();
  });
}
