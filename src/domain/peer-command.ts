/**
 * What a peer's SSH key may run on this node. sshd hands the forced command the string
 * the peer asked for (SSH_ORIGINAL_COMMAND); it is split into words by a strict parser
 * (only what src/adapters/ssh/shell-quote.ts produces, plus bare safe words) and the argv
 * must match one of the shapes kvm-ferry's own steps use, with every path inside the
 * node's image/data directories. Anything else is refused: no shell ever sees the string.
 */
import { isIP } from 'node:net';
import { LINK_SINK_MAX_SEC, LINK_SINK_PERL, LINK_SINK_PORTS } from './link-sink.js';

export interface PeerCommandPolicy {
  /** Where a peer may create, write and remove files (imageDir, dataDir, isoDir, libvirt's images and NVRAM dirs). */
  dirs: readonly string[];
  /**
   * Where it may also read a file's checksum or image header: the plan compares kernels,
   * initrds, firmware and ISOs named by the VM's XML with the destination's copies.
   */
  readDirs?: readonly string[];
}

/** libvirt's own places for disks and UEFI variable stores (a UEFI VM's NVRAM moves with it). */
export const LIBVIRT_WRITE_DIRS = ['/var/lib/libvirt/images', '/var/lib/libvirt/qemu/nvram'];
/** Where boot files a VM's XML names usually live: kernels/initrds, firmware, kvm-ferry's cache. */
export const DEFAULT_READ_DIRS = ['/var/lib/libvirt', '/var/cache/kvm-ferry', '/boot', '/usr/share/OVMF', '/usr/share/AAVMF', '/usr/share/qemu', '/usr/share/seabios'];

export type PeerCommandVerdict = { ok: true; argv: string[] } | { ok: false; reason: string };

const SAFE_BARE = /^[A-Za-z0-9_@%+=:,./-]$/;

/**
 * POSIX words, strictly: bare characters from a small safe set, '…' single-quoted runs
 * (nothing inside is special), and \' outside quotes (how a quote inside a word is sent).
 * Words are separated by spaces. Anything a shell would expand, redirect, chain or glob
 * is an error, as are control characters even inside quotes.
 */
export function parseWords(s: string): string[] | { error: string } {
  const words: string[] = [];
  let cur: string | null = null;
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c.charCodeAt(0) < 0x20 || c === '\x7f') return { error: 'the command contains a control character' };
    if (c === ' ') {
      if (cur !== null) words.push(cur);
      cur = null;
      i++;
    } else if (c === "'") {
      const end = s.indexOf("'", i + 1);
      if (end < 0) return { error: 'the command has an unterminated quote' };
      const inner = s.slice(i + 1, end);
      // eslint-disable-next-line no-control-regex
      if (/[\x00-\x1f\x7f]/.test(inner)) return { error: 'the command contains a control character' };
      cur = (cur ?? '') + inner;
      i = end + 1;
    } else if (c === '\\' && s[i + 1] === "'") {
      cur = (cur ?? '') + "'";
      i += 2;
    } else if (SAFE_BARE.test(c)) {
      cur = (cur ?? '') + c;
      i++;
    } else {
      return { error: `the command contains the shell character ${JSON.stringify(c)} outside quotes` };
    }
  }
  if (cur !== null) words.push(cur);
  if (words.length === 0) return { error: 'no command was given (an interactive shell is not offered)' };
  return words;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const POOL = /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$/;
const HOST = /^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/;
const BYTES = /^[0-9]{1,20}$/;

/** Absolute and normalised (no '', '.', '..' segments), no control bytes. */
export function isNormalAbsolute(p: string): boolean {
  if (!p.startsWith('/') || p.length > 4096) return false;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(p)) return false;
  return !p.split('/').slice(1).some((s) => s === '' || s === '.' || s === '..');
}

/** An absolute, normalised path with no odd bytes, strictly inside one of the policy's dirs (or equal to one if allowed). */
export function pathAllowed(p: string, policy: PeerCommandPolicy, opts: { dirItself?: boolean } = {}): boolean {
  if (!isNormalAbsolute(p)) return false;
  return policy.dirs.some((d) => {
    const dir = d.replace(/\/+$/, '');
    if (dir === '' || !dir.startsWith('/')) return false;
    return p.startsWith(dir + '/') || (opts.dirItself === true && p === dir);
  });
}

type Matcher = (args: string[], policy: PeerCommandPolicy) => boolean;

/** Exact words, with placeholders checked by a predicate. */
const shape = (...parts: (string | ((w: string, policy: PeerCommandPolicy) => boolean))[]): Matcher =>
  (args, policy) => args.length === parts.length && parts.every((p, i) => (typeof p === 'string' ? args[i] === p : p(args[i]!, policy)));

const file = (w: string, policy: PeerCommandPolicy) => pathAllowed(w, policy);
const readable = (w: string, policy: PeerCommandPolicy) => pathAllowed(w, { dirs: [...policy.dirs, ...(policy.readDirs ?? [])] });
/** Any absolute normalised path: `stat -L -c %F/%s` answers only "type/size", which the plan needs for any path the XML names. */
const anyPath = (w: string) => isNormalAbsolute(w);
const dir = (w: string, policy: PeerCommandPolicy) => pathAllowed(w, policy, { dirItself: true });
const prefixed = (prefix: string, rest: (w: string, policy: PeerCommandPolicy) => boolean) => (w: string, policy: PeerCommandPolicy) =>
  w.startsWith(prefix) && rest(w.slice(prefix.length), policy);
const uuid = (w: string) => UUID.test(w);
const pool = (w: string) => POOL.test(w);
const bytes = (w: string) => BYTES.test(w);
const host = (w: string) => HOST.test(w) && !w.includes('..');
const ipLiteral = (w: string) => isIP(w) !== 0;
const intIn = (min: number, max: number) => (w: string) => /^[0-9]{1,5}$/.test(w) && Number(w) >= min && Number(w) <= max;

/** virsh subcommands (after `virsh -c qemu:///system`) the manager asks a peer. Read-only, except removing a leftover of a failed move and resuming a VM paused for its copy, by UUID. */
const VIRSH: Matcher[] = [
  shape('hostname'),
  shape('capabilities'),
  shape('nodememstats'),
  shape('list', '--all', '--name'),
  shape('list', '--all', '--uuid'),
  shape('list', '--all', '--uuid', '--name'),
  shape('net-list', '--name'),
  shape('secret-list'),
  shape('pool-info', '--pool', pool),
  shape('vol-list', '--pool', pool, '--name'),
  shape('domstate', '--reason', '--domain', uuid),
  shape('dumpxml', '--domain', uuid),
  shape('domjobinfo', '--domain', uuid, '--completed', '--rawstats'),
  // leftovers.ts: a half-arrived VM of a failed move is destroyed and undefined by UUID.
  shape('destroy', '--domain', uuid),
  shape('undefine', '--domain', uuid, '--keep-nvram'),
  // live-copy.ts: a VM paused for its whole copy (an emulated guest on QEMU < 9.0) is resumed where it arrived.
  shape('resume', '--domain', uuid),
];

/** Program → the argument shapes kvm-ferry's steps send it (see the README's "Peer shell" for the caller of each). */
const PROGRAMS: Record<string, Matcher[]> = {
  // libvirt's remote helper asked for without libvirt's sh wrapper (by hand, or a future libvirt).
  'virt-ssh-helper': [shape('qemu:///system'), shape('-r', 'qemu:///system')],
  virsh: [(args, policy) => args[0] === '-c' && args[1] === 'qemu:///system' && VIRSH.some((m) => m(args.slice(2), policy))],
  'qemu-img': [
    shape('create', '-q', '-f', 'qcow2', '-o', 'preallocation=off', file, bytes),
    shape('create', '-q', '-f', 'raw', file, bytes),
    shape('info', '-U', '--output=json', readable),
  ],
  df: [shape('-B1', '--output=avail', '--', dir)],
  mkdir: [shape('-p', '--', dir)],
  dd: [
    // remote-files.ts: claim a destination file (fails if it exists).
    shape('if=/dev/null', prefixed('of=', file), 'conv=excl', 'status=none'),
    // offline-copy.ts: the image arrives on stdin.
    shape(prefixed('of=', file), 'bs=1M', 'conv=sparse,notrunc,fsync', 'status=none'),
  ],
  truncate: [shape('-s', bytes, '--', file)],
  stat: [shape('-c', '%d:%i', '--', readable), shape('-L', '-c', '%F/%s', '--', anyPath)],
  sha256sum: [shape('--', readable)],
  rm: [shape('-f', '--', file)],
  ls: [shape('-1', '/sys/class/net')],
  getent: [shape('ahosts', host)],
  // measure.ts: fast-finish's pre-flight asks whether QEMU may use userfaultfd (post-copy); this one file only.
  cat: [shape('/proc/sys/vm/unprivileged_userfaultfd')],
  // link-test.ts: the pre-flight's timed transfer, exactly this sink (listens on one
  // address and port from libvirt's migration range, reads, prints a count); no other Perl.
  perl: [shape('-e', LINK_SINK_PERL, ipLiteral, intIn(LINK_SINK_PORTS.min, LINK_SINK_PORTS.max), intIn(1, LINK_SINK_MAX_SEC))],
  // A harmless identity probe (the lab's and an operator's "does the key work" check).
  hostname: [shape()],
};

/** Where each allowed program is executed from: a fixed path, never $PATH. */
export const PROGRAM_PATHS: Record<string, string> = {
  'virt-ssh-helper': '/usr/bin/virt-ssh-helper',
  virsh: '/usr/bin/virsh',
  'qemu-img': '/usr/bin/qemu-img',
  df: '/usr/bin/df',
  mkdir: '/usr/bin/mkdir',
  dd: '/usr/bin/dd',
  truncate: '/usr/bin/truncate',
  stat: '/usr/bin/stat',
  sha256sum: '/usr/bin/sha256sum',
  rm: '/usr/bin/rm',
  ls: '/usr/bin/ls',
  getent: '/usr/bin/getent',
  perl: '/usr/bin/perl',
  cat: '/usr/bin/cat',
  hostname: '/usr/bin/hostname',
};

/**
 * libvirt's qemu+libssh2 transport (libvirt 9.0, virNetClientSSHHelperCommand) always
 * wraps its remote helper in `sh -c '…'`: with proxy=native the script is only
 * `virt-ssh-helper [-r] 'qemu:///system'`, by default (proxy=auto) it first looks for
 * virt-ssh-helper and falls back to nc. These exact strings — and no other `sh` —
 * are recognised, and virt-ssh-helper is then executed directly: sh never runs.
 */
const LIBVIRT_HELPER: Record<string, string[]> = {
  "sh -c 'virt-ssh-helper 'qemu:///system''": ['qemu:///system'],
  "sh -c 'virt-ssh-helper -r 'qemu:///system''": ['-r', 'qemu:///system'],
  "sh -c 'which virt-ssh-helper 1>/dev/null 2>&1; if test $? = 0; then     virt-ssh-helper 'qemu:///system'; else    if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' $ARG -U /var/run/libvirt/libvirt-sock; fi'":
    ['qemu:///system'],
  "sh -c 'which virt-ssh-helper 1>/dev/null 2>&1; if test $? = 0; then     virt-ssh-helper -r 'qemu:///system'; else    if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' $ARG -U /var/run/libvirt/libvirt-sock; fi'":
    ['-r', 'qemu:///system'],
};

/** The decision: the argv to execute, or why not (one sentence, for the peer and the log). */
export function checkPeerCommand(original: string | undefined, policy: PeerCommandPolicy): PeerCommandVerdict {
  if (original === undefined || original === '') return { ok: false, reason: 'This key only runs kvm-ferry peer commands; an interactive shell is not offered.' };
  if (original.length > 16_384) return { ok: false, reason: 'The command is too long for a kvm-ferry peer command.' };
  if (Object.hasOwn(LIBVIRT_HELPER, original)) return { ok: true, argv: [PROGRAM_PATHS['virt-ssh-helper']!, ...LIBVIRT_HELPER[original]!] };
  const words = parseWords(original);
  if (!Array.isArray(words)) return { ok: false, reason: `Refused: ${words.error}.` };
  const [prog, ...args] = words as [string, ...string[]];
  const shapes = Object.hasOwn(PROGRAMS, prog) ? PROGRAMS[prog]! : null;
  if (!shapes) return { ok: false, reason: `Refused: ${JSON.stringify(prog.slice(0, 64))} is not a command kvm-ferry runs on a peer.` };
  if (!shapes.some((m) => m(args, policy))) {
    return { ok: false, reason: `Refused: these arguments to ${prog} are not a kvm-ferry peer command (paths must lie under ${policy.dirs.join(', ')}).` };
  }
  return { ok: true, argv: [PROGRAM_PATHS[prog]!, ...args] };
}

/**
 * kvm-ferry's own membership verbs (invite/join/remove), answered by the peer shell
 * itself, not by a program: `kvm-ferry-join` (only with an invite's bootstrap key, its
 * request on stdin), `kvm-ferry-introduce` (a member adds a new node, the inviter's
 * request on stdin) and `kvm-ferry-forget NAME` (a member drops a removed node).
 */
export type PeerVerb =
  | { kind: 'none' }
  | { kind: 'refused'; reason: string }
  | { kind: 'join'; inviteId: string }
  | { kind: 'introduce' }
  | { kind: 'forget'; name: string };

export function peerVerb(original: string | undefined, inviteId: string | null): PeerVerb {
  const words = original ? parseWords(original) : null;
  const w = Array.isArray(words) ? words : [];
  if (inviteId !== null) {
    if (!/^[A-Za-z0-9_-]{8,64}$/.test(inviteId)) return { kind: 'refused', reason: 'This invite key names an invalid invite.' };
    if (w.length === 1 && w[0] === 'kvm-ferry-join') return { kind: 'join', inviteId };
    return { kind: 'refused', reason: 'An invite key only runs kvm-ferry-join.' };
  }
  if (w[0] === 'kvm-ferry-join') return { kind: 'refused', reason: 'kvm-ferry-join runs only with an invite key.' };
  if (w.length === 1 && w[0] === 'kvm-ferry-introduce') return { kind: 'introduce' };
  if (w.length === 2 && w[0] === 'kvm-ferry-forget' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(w[1]!)) return { kind: 'forget', name: w[1]! };
  if (w[0] === 'kvm-ferry-introduce' || w[0] === 'kvm-ferry-forget') return { kind: 'refused', reason: `Refused: these arguments to ${w[0]} are not a kvm-ferry peer command.` };
  return { kind: 'none' };
}
