import { describe, expect, it } from 'vitest';
import { checkPeerCommand, parseWords, pathAllowed } from '../../src/domain/peer-command.js';
import { quoteArgv } from '../../src/adapters/ssh/shell-quote.js';
import { buildCreateArgs, buildInfoArgs } from '../../src/adapters/qemu-img/qemu-img.js';
import { LINK_SINK_PERL } from '../../src/domain/link-sink.js';

const policy = { dirs: ['/var/lib/libvirt/images', '/var/lib/kvm-ferry', '/var/lib/kvm-ferry/iso', '/var/lib/libvirt/qemu/nvram'], readDirs: ['/var/cache/kvm-ferry', '/usr/share/OVMF'] };
const IMG = '/var/lib/libvirt/images/web 1.qcow2';
const UUID = '0f8fad5b-d9cb-469f-a165-70867728950e';
/** Exactly what PeerShell.exec sends. */
const sent = (file: string, ...args: string[]) => quoteArgv(file, args);
const allowed = (cmd: string | undefined) => checkPeerCommand(cmd, policy);

describe('parseWords', () => {
  it('reads back every argv shell-quote.ts produces, including quotes and spaces', () => {
    const hostile = ["it's", 'a b', '$(id)', '`id`', ';', '|', '&&', '"', '\\', '*', '~', '#x', '--'];
    expect(parseWords(quoteArgv('prog', hostile))).toEqual(['prog', ...hostile]);
  });
  it('accepts bare safe words', () => {
    expect(parseWords('virt-ssh-helper qemu:///system')).toEqual(['virt-ssh-helper', 'qemu:///system']);
  });
  it.each([
    ['virsh list; id', ';'],
    ['echo $(id)', '$'],
    ['echo `id`', '`'],
    ['a | b', '|'],
    ['a && b', '&'],
    ['a > /etc/passwd', '>'],
    ['ls *', '*'],
    ['cat ~root/x', '~'],
    ['"id"', '"'],
    ['a\\ b', '\\'],
  ])('refuses %j (shell character %s outside quotes)', (cmd, ch) => {
    expect(parseWords(cmd)).toEqual({ error: `the command contains the shell character ${JSON.stringify(ch)} outside quotes` });
  });
  it('refuses newlines, tabs and NUL even inside quotes, and unterminated quotes', () => {
    expect(parseWords("'virsh'\n'id'")).toHaveProperty('error');
    expect(parseWords("'a\nb'")).toHaveProperty('error');
    expect(parseWords("'a\0b'")).toHaveProperty('error');
    expect(parseWords("a\tb")).toHaveProperty('error');
    expect(parseWords("'abc")).toHaveProperty('error');
    expect(parseWords('')).toHaveProperty('error');
  });
});

describe('pathAllowed', () => {
  it('takes paths strictly inside the dirs', () => {
    expect(pathAllowed(IMG, policy)).toBe(true);
    expect(pathAllowed('/var/lib/kvm-ferry/x/y.raw', policy)).toBe(true);
  });
  it.each([
    '/etc/shadow', 'relative.qcow2', '/var/lib/libvirt/images', '/var/lib/libvirt/images/../../../etc/shadow',
    '/var/lib/libvirt/images/./a', '/var/lib/libvirt/images//a', '/var/lib/libvirt/images-evil/a', '/var/lib/libvirt/images/a\nb', '/var/lib/libvirt/images/a\0b', '',
  ])('refuses %j', (p) => expect(pathAllowed(p, policy)).toBe(false));
  it('takes the dir itself only where asked (df, mkdir)', () => {
    expect(pathAllowed('/var/lib/libvirt/images', policy, { dirItself: true })).toBe(true);
    expect(pathAllowed('/var/lib/libvirt', policy, { dirItself: true })).toBe(false);
  });
});

describe('checkPeerCommand: every command kvm-ferry sends a peer is allowed', () => {
  const real = [
    sent('virt-ssh-helper', 'qemu:///system'),
    // What libvirt 9.0's qemu+libssh2 sends (captured in the lab), proxy=native and proxy=auto.
    "sh -c 'virt-ssh-helper 'qemu:///system''",
    "sh -c 'virt-ssh-helper -r 'qemu:///system''",
    "sh -c 'which virt-ssh-helper 1>/dev/null 2>&1; if test $? = 0; then     virt-ssh-helper 'qemu:///system'; else    if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' $ARG -U /var/run/libvirt/libvirt-sock; fi'",
    'virt-ssh-helper qemu:///system',
    ...[['hostname'], ['capabilities'], ['nodememstats'], ['list', '--all', '--name'], ['list', '--all', '--uuid'], ['list', '--all', '--uuid', '--name'],
      ['net-list', '--name'], ['secret-list'], ['pool-info', '--pool', 'default'], ['vol-list', '--pool', 'default', '--name'],
      ['domstate', '--reason', '--domain', UUID], ['dumpxml', '--domain', UUID], ['domjobinfo', '--domain', UUID, '--completed', '--rawstats'],
      ['destroy', '--domain', UUID], ['undefine', '--domain', UUID, '--keep-nvram']].map((a) => sent('virsh', '-c', 'qemu:///system', ...a)),
    sent('qemu-img', ...buildCreateArgs(IMG, 1073741824, 'qcow2')),
    sent('qemu-img', ...buildCreateArgs('/var/lib/libvirt/images/d.raw', 512, 'raw')),
    sent('qemu-img', ...buildInfoArgs(IMG)),
    sent('df', '-B1', '--output=avail', '--', '/var/lib/libvirt/images'),
    sent('mkdir', '-p', '--', '/var/lib/libvirt/images/sub'),
    sent('dd', 'if=/dev/null', `of=${IMG}`, 'conv=excl', 'status=none'),
    sent('dd', `of=${IMG}`, 'bs=1M', 'conv=sparse,notrunc,fsync', 'status=none'),
    sent('truncate', '-s', '1073741824', '--', IMG),
    sent('stat', '-c', '%d:%i', '--', IMG),
    sent('stat', '-L', '-c', '%F/%s', '--', IMG),
    sent('sha256sum', '--', IMG),
    sent('rm', '-f', '--', IMG),
    sent('ls', '-1', '/sys/class/net'),
    sent('getent', 'ahosts', 'lab-b.example'),
    // Plan facts about boot files the XML names (captured in the device-migration e2e): type/size of any path, checksums under the read dirs.
    sent('stat', '-L', '-c', '%F/%s', '--', '/var/cache/kvm-ferry/guest/vmlinuz'),
    sent('stat', '-L', '-c', '%F/%s', '--', '/opt/kernels/vmlinuz-6.1'),
    sent('sha256sum', '--', '/usr/share/OVMF/OVMF_CODE_4M.fd'),
    sent('dd', 'if=/dev/null', 'of=/var/lib/libvirt/qemu/nvram/dev-uefi_VARS.fd', 'conv=excl', 'status=none'),
    'hostname',
    // The pre-flight's link test (what measureLink sends: the fixed sink, the peer's data address, a port, a deadline).
    sent('perl', '-e', LINK_SINK_PERL, '10.77.0.12', '49152', '8'),
    sent('perl', '-e', LINK_SINK_PERL, 'fd00::12', '49215', '8'),
    // fast-finish's pre-flight: may QEMU use userfaultfd there?
    sent('cat', '/proc/sys/vm/unprivileged_userfaultfd'),
  ];
  it.each(real)('%s', (cmd) => {
    const v = allowed(cmd);
    expect(v.ok, JSON.stringify(v)).toBe(true);
    if (v.ok) expect(v.argv[0]).toMatch(/^\/usr\/bin\//);
  });
  it("runs libvirt's helper itself, never sh", () => {
    expect(allowed("sh -c 'virt-ssh-helper 'qemu:///system''")).toEqual({ ok: true, argv: ['/usr/bin/virt-ssh-helper', 'qemu:///system'] });
  });
  it('executes the parsed argv by absolute path, with the quoted path intact', () => {
    expect(allowed(sent('rm', '-f', '--', IMG))).toEqual({ ok: true, argv: ['/usr/bin/rm', '-f', '--', IMG] });
  });
});

describe('checkPeerCommand: anything else is refused with a sentence', () => {
  const hostile = [
    'id', 'cat /etc/shadow', "bash -c 'id'", 'sh -c id', 'virsh list; id', sent('virsh', 'list; id'), 'virsh list $(id)', 'virsh `id`',
    sent('/bin/sh'), sent('/usr/bin/virsh', '-c', 'qemu:///system', 'hostname'), sent('python3', '-c', 'import os'),
    // virsh: other URIs, other subcommands, names instead of UUIDs, extra options.
    sent('virsh', 'hostname'), sent('virsh', '-c', 'qemu+tcp://evil/system', 'hostname'), sent('virsh', '-c', 'qemu:///system', 'start', UUID),
    sent('virsh', '-c', 'qemu:///system', 'dumpxml', '--domain', 'web'), sent('virsh', '-c', 'qemu:///system', 'undefine', '--domain', UUID, '--remove-all-storage'),
    sent('virsh', '-c', 'qemu:///system', 'destroy', '--domain', UUID, '--graceful'), sent('virsh', '-c', 'qemu:///system', 'pool-info', '--pool', '--help'),
    sent('virsh', '-c', 'qemu:///system', 'list', '--all', '--name', 'extra'), sent('virsh', '-c', 'qemu:///system', 'qemu-monitor-command', UUID, 'x'),
    // qemu-img: options smuggled in, backing files, paths outside.
    sent('qemu-img', 'create', '-q', '-f', 'qcow2', '-o', 'backing_file=/etc/shadow', IMG, '1'),
    sent('qemu-img', 'create', '-q', '-f', 'qcow2', '-o', 'preallocation=off', '/etc/cron.d/x', '1'),
    sent('qemu-img', 'create', '-q', '-f', 'qcow2', '-o', 'preallocation=off', IMG, '1; id'),
    sent('qemu-img', 'info', '-U', '--output=json', '/etc/shadow'), sent('qemu-img', 'info', '-U', '--output=json', '--image-opts', IMG),
    sent('qemu-img', 'convert', IMG, '/var/lib/libvirt/images/b'), sent('qemu-img', 'info', '-U', '--output=json', '/var/lib/libvirt/images/../../../etc/shadow'),
    // dd: reading instead of writing, other targets, extra operands.
    sent('dd', 'if=/etc/shadow', `of=${IMG}`, 'conv=excl', 'status=none'), sent('dd', 'if=/dev/sda', 'bs=1M', 'conv=sparse,notrunc,fsync', 'status=none'),
    sent('dd', 'of=/dev/sda', 'bs=1M', 'conv=sparse,notrunc,fsync', 'status=none'), sent('dd', `of=${IMG}`, 'bs=1M', 'conv=sparse,notrunc,fsync', 'status=none', 'if=/etc/shadow'),
    // rm: outside the dirs, recursive, the dir itself, options after --.
    sent('rm', '-f', '--', '/etc/passwd'), sent('rm', '-rf', '--', '/var/lib/libvirt/images/a'), sent('rm', '-f', '--', '/var/lib/libvirt/images'),
    sent('rm', '-f', '/var/lib/libvirt/images/a'), sent('rm', '-f', '--', '/var/lib/libvirt/images/a', '/etc/passwd'), sent('rm', '-f', '--', '/var/lib/libvirt/images/../../../etc/passwd'),
    sent('sha256sum', '--', '/etc/shadow'), sent('sha256sum', '/etc/shadow'), sent('stat', '-L', '-c', '%F/%s', '--', '/etc/../etc/shadow'),
    sent('stat', '-L', '-c', '%F/%s', '--', 'etc/shadow'), sent('rm', '-f', '--', '/usr/share/OVMF/OVMF_CODE_4M.fd'), sent('qemu-img', 'info', '-U', '--output=json', '/root/x.qcow2'), sent('stat', '-c', '%n', '--', IMG), sent('df', '-B1', '--output=avail', '--', '/'),
    sent('mkdir', '-p', '--', '/etc/cron.d'), sent('truncate', '-s', '-1', '--', IMG), sent('ls', '-1', '/root'), sent('getent', 'shadow', 'root'), sent('getent', 'ahosts', '-x'),
    sent('hostname', 'evil'), sent('virt-ssh-helper', 'qemu:///session'), sent('virt-ssh-helper', '-r', 'qemu+tcp://x/system'),
    // libvirt's helper script with anything changed is just sh: refused.
    "sh -c 'which virt-ssh-helper 1>/dev/null 2>&1; if test $? = 0; then     virt-ssh-helper 'qemu:///system'; else    nc -U /var/run/libvirt/libvirt-sock; fi'",
    "sh -c 'virt-ssh-helper 'qemu:///system'; id'", "sh -c 'virt-ssh-helper 'qemu+tcp://x/system''", "sh -c 'virt-ssh-helper 'qemu:///system'' ",
    // perl: only the link sink, only an IP literal, a port from libvirt's migration range and a short deadline.
    sent('perl', '-e', 'system("id")', '10.77.0.12', '49152', '8'), sent('perl', '-e', `${LINK_SINK_PERL} system("id");`, '10.77.0.12', '49152', '8'),
    sent('perl', '-e', LINK_SINK_PERL, 'evil.example', '49152', '8'), sent('perl', '-e', LINK_SINK_PERL, '10.77.0.12', '22', '8'),
    sent('perl', '-e', LINK_SINK_PERL, '10.77.0.12', '49152', '3600'), sent('perl', '-e', LINK_SINK_PERL, '10.77.0.12', '49152', '8', 'x'),
    sent('perl', '-e', LINK_SINK_PERL, '10.77.0.12', '049152', '8'), sent('cat', '/etc/shadow'), sent('cat', '/proc/sys/vm/unprivileged_userfaultfd', '/etc/shadow'),
    sent('cat', '/proc/sys/vm/../../../etc/shadow'), sent('perl', '-E', LINK_SINK_PERL, '10.77.0.12', '49152', '8'), sent('perl', '/tmp/x.pl'),
    "'virsh'\n'id'", "'rm' '-f' '--' '/var/lib/libvirt/images/a\0'", 'constructor', '__proto__', 'toString', '',
  ];
  it.each(hostile)('%j', (cmd: string) => {
    const v = allowed(cmd);
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.reason).toMatch(/^[A-Z].*\.$/);
  });
  it('says what was wrong', () => {
    expect(allowed('id')).toEqual({ ok: false, reason: 'Refused: "id" is not a command kvm-ferry runs on a peer.' });
    expect(allowed(undefined)).toEqual({ ok: false, reason: 'This key only runs kvm-ferry peer commands; an interactive shell is not offered.' });
    expect(allowed('virsh list; id')).toEqual({ ok: false, reason: 'Refused: the command contains the shell character ";" outside quotes.' });
  });
});
