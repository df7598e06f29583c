/**
 * The link test's TCP sink, run on the peer with Perl (present on every Debian node): it
 * listens on the peer's data address, takes one connection, reads until EOF or its deadline
 * and prints how many bytes arrived between the first and the last read. The peer's clock
 * judges the transfer, so bytes still queued in the sending node's socket buffer are not
 * counted. Arguments arrive as argv. One line: the peer shell refuses control characters,
 * and allows `perl -e` with exactly this text (src/domain/peer-command.ts).
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
].join(' ');

/** The port range the link test listens in: libvirt's migration ports (open wherever migrations work). */
export const LINK_SINK_PORTS = { min: 49152, max: 49215 } as const;
/** The longest a sink may wait, in seconds. */
export const LINK_SINK_MAX_SEC = 60;
