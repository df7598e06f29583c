import { randomBytes, randomInt } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { CommandResult } from '../process/run-command.js';

/**
 * A TCP sink run on the peer with Perl (present on every Debian node): it listens on the
 * peer's data address, takes one connection, reads until EOF or its deadline and prints
 * how many bytes arrived between the first and the last read. The peer's clock judges
 * the transfer, so bytes still queued in this node's socket buffer are not counted.
 * Arguments arrive as argv (quoted for the peer's shell by the SSH adapter).
 */
export const LINK_SINK_PERL = [
  'use strict; use IO::Socket::INET; use Time::HiRes qw(time);',
  'my ($addr, $port, $max) = @ARGV;',
  'my $l = IO::Socket::INET->new(LocalAddr => $addr, LocalPort => $port, Listen => 1, ReuseAddr => 1, Proto => "tcp") or die "listen $addr:$port: $!\\n";',
  'my $end = time + $max; my $rin = ""; vec($rin, fileno($l), 1) = 1;',
  'select(my $r = $rin, undef, undef, $max) or die "no connection within $max s\\n";',
  'my $c = $l->accept or die "accept: $!\\n"; my ($n, $t0, $t1, $first, $buf) = (0, undef, undef, 0);',
  'my $cin = ""; vec($cin, fileno($c), 1) = 1;',
  'while (1) { my $left = $end - time; last if $left <= 0; select(my $r2 = $cin, undef, undef, $left) or last;',
  '  my $k = sysread($c, $buf, 1 << 20); last if !$k; if (!defined $t0) { $t0 = time; $first = $k } else { $n += $k } $t1 = time; }',
  'printf "bytes=%d secs=%.6f\\n", $n, (defined $t0 ? $t1 - $t0 : 0);',
].join('\n');

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

export const DEFAULT_LINK_TEST: LinkTestOptions = { sendMs: 2500, maxBytes: 64 * 1024 ** 2, sinkSec: 8, portMin: 49152, portMax: 49215 };

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
  if (parsed.seconds <= 0.05 || parsed.bytes === 0) throw new Error(`the link test to ${address}:${port} moved too little data to measure`);
  return { ...parsed, bps: parsed.bytes / parsed.seconds };
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
