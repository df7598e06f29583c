import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDomStats } from '../../src/domain/stats/domstats.js';
import { IoDeltas, ioFromDomStats, ioRates, zeroCounters } from '../../src/domain/stats/io.js';
import { CallLimit } from '../../src/adapters/libvirt/call-limit.js';
import { VirshShell } from '../../src/adapters/virsh/virsh-shell.js';
import { makeFixture } from '../helpers/fixture.js';
import { LibvirtConnection } from '../../src/adapters/libvirt/connection.js';
import { LibvirtSampler } from '../../stats-daemon/libvirt-sampler.js';
import { DomStatsIoSource } from '../../stats-daemon/io-source.js';

// As a real libvirtd prints `domstats --raw --block --interface` (two disks, a CD-ROM without medium, one tap).
const REAL = `Domain: 'web-01'
  block.count=3
  block.0.name=vda
  block.0.rd.reqs=100
  block.0.rd.bytes=409600
  block.0.wr.reqs=50
  block.0.wr.bytes=204800
  block.1.name=vdb
  block.1.rd.reqs=1
  block.1.rd.bytes=512
  block.1.wr.reqs=0
  block.1.wr.bytes=0
  block.2.name=hda
  net.count=1
  net.0.name=vnet3
  net.0.rx.bytes=9000
  net.0.rx.pkts=90
  net.0.tx.bytes=3000
  net.0.tx.pkts=30

Domain: 'idle'
  block.count=0
  net.count=0
`;

describe('disk and network counters', () => {
  it('sums every disk and interface of a domain, a CD-ROM without counters adds nothing', () => {
    const [web, idle] = parseDomStats(REAL);
    expect(ioFromDomStats(web!)).toEqual({ diskRdBytes: 410112, diskWrBytes: 204800, diskRdOps: 101, diskWrOps: 50, netInBytes: 9000, netOutBytes: 3000, netInPkts: 90, netOutPkts: 30 });
    expect(ioFromDomStats(idle!)).toEqual(zeroCounters());
  });

  it('rates per second from two readings; none on first sight or after a counter went down', () => {
    const d = new IoDeltas();
    const a = { ...zeroCounters(), diskWrBytes: 1000, netOutPkts: 10 };
    expect(d.next('u/1', a, 0)).toBeNull();
    expect(d.next('u/1', { ...a, diskWrBytes: 11_000, netOutPkts: 20 }, 5000)).toMatchObject({ diskWrBytes: 2000, netOutPkts: 2, diskRdBytes: 0 });
    expect(ioRates({ ...a, diskWrBytes: 5 }, a, 5000)).not.toBeNull();
    expect(ioRates(a, { ...a, diskWrBytes: 5 }, 5000)).toBeNull();
    expect(ioRates(a, a, 0)).toBeNull();
  });
});

describe('one kept-running virsh fed on stdin', () => {
  it('answers many commands from one process, and refuses anything but plain words', async () => {
    const f = makeFixture([{ name: 'kf-io-a' }, { name: 'kf-io-b', state: 'shut-off' }]);
    const sh = new VirshShell(f.uri, 10_000);
    try {
      for (let i = 0; i < 3; i++) {
        const out = await sh.run(['domstats', '--raw', '--list-active', '--block', '--interface']);
        expect(parseDomStats(out).map((d) => d.name)).toEqual(['kf-io-a']);
      }
      expect(sh.starts).toBe(1);
      for (const bad of [['list;', 'reboot'], ['list', '--all', "'x'"], ['list', 'a b'], ['list\nreboot'], ['echo', '#']]) {
        await expect(sh.run(bad)).rejects.toMatchObject({ code: 'INTERNAL' });
      }
      expect(sh.starts).toBe(1);
    } finally {
      sh.close();
    }
  });

  it('a command with no answer in time fails with "libvirt does not answer" and the next one starts a fresh virsh', async () => {
    // A program that reads nothing and prints nothing stands in for a virsh whose libvirtd never answers.
    const dir = mkdtempSync(join(tmpdir(), 'kf-stuck-'));
    const fake = join(dir, 'virsh');
    writeFileSync(fake, '#!/bin/sh\nexec sleep 1000\n', { mode: 0o755 });
    const stuck = new VirshShell('test:///default', 300, fake);
    await expect(stuck.run(['list'])).rejects.toThrow(/libvirt does not answer/);
    const f = makeFixture([{ name: 'kf-io-c' }]);
    const sh = new VirshShell(f.uri, 10_000);
    try {
      await expect(sh.run(['domstats', '--raw', '--list-active'])).resolves.toContain("Domain: 'kf-io-c'");
    } finally {
      sh.close();
      stuck.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('bounded binding calls', () => {
  it('never runs more than max at once; a call that times out keeps its slot until it really returns', async () => {
    const limit = new CallLimit(2);
    const hang: (() => void)[] = [];
    const blocked = () => new Promise<void>((r) => hang.push(r));
    const a = limit.run(blocked, 50, 'libvirt a');
    const b = limit.run(blocked, 50, 'libvirt b');
    const c = limit.run(async () => 'c', 50, 'libvirt c');
    await expect(a).rejects.toThrow('libvirt does not answer: libvirt a got no reply in 0 s.');
    await expect(b).rejects.toMatchObject({ code: 'LIBVIRT_UNREACHABLE' });
    // c waited for a slot the whole time: the two stuck calls still hold the threads.
    await expect(c).rejects.toThrow(/libvirt c got no reply/);
    expect(limit.busy).toBe(2);
    hang.forEach((r) => r());
    await new Promise((r) => setTimeout(r, 10));
    expect(limit.busy).toBe(0);
    await expect(limit.run(async () => 'ok', 50, 'libvirt d')).resolves.toBe('ok');
  });
});

describe('the libvirt sampler with the kept virsh', () => {
  it('takes CPU time, vCPUs and memory from the one domstats answer when it has them, with no domainGetInfo', async () => {
    const f = makeFixture([{ name: 'kf-cpu-a', vcpus: 2, memoryMiB: 512 }]);
    // Stands in for virsh on a real libvirtd: answers domstats with the groups a real one prints, echo with its word.
    const dir = mkdtempSync(join(tmpdir(), 'kf-fakevirsh-'));
    const fake = join(dir, 'virsh');
    const counter = join(dir, 'n');
    writeFileSync(counter, '0');
    writeFileSync(fake, `#!/bin/sh
while read -r cmd rest; do
  case "$cmd" in
    echo) echo "$rest" ;;
    domstats) n=$(cat ${counter}); n=$((n + 1)); echo $n > ${counter}
      printf "Domain: 'kf-cpu-a'\\n  cpu.time=%d000000000\\n  balloon.current=524288\\n  vcpu.current=2\\n  block.count=1\\n  block.0.wr.bytes=%d\\n  net.count=0\\n\\n" "$n" "$((n * 1000))" ;;
  esac
done
`, { mode: 0o755 });
    const sampler = new LibvirtSampler(new LibvirtConnection(f.uri), null, new DomStatsIoSource(new VirshShell(f.uri, 10_000, fake)));
    try {
      const first = await sampler.sample(Date.now());
      expect(sampler.infoCalls).toBe(0);
      expect(first[0]).toMatchObject({ name: 'kf-cpu-a', ramMiB: 512, ramKind: 'assigned', cpuPct: null });
      const second = await sampler.sample(Date.now());
      expect(sampler.infoCalls).toBe(0);
      // 1 s of CPU time between two answers a few ms apart, over 2 vCPUs: far above 100 %, clamped.
      expect(second[0]!.cpuPct).toBe(100);
      expect(second[0]!.io!.diskWrBytes).toBeGreaterThan(0);
      expect(second[0]!.uuid).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      await sampler.close();
      rmSync(dir, { recursive: true, force: true });
      rmSync(f.dir, { recursive: true, force: true });
    }
  });

  it('asks the binding for a VM the answer lacks (the test driver prints no CPU time)', async () => {
    const f = makeFixture([{ name: 'kf-cpu-b' }, { name: 'kf-cpu-c' }, { name: 'kf-cpu-d', state: 'shut-off' }]);
    const sampler = new LibvirtSampler(new LibvirtConnection(f.uri), null, new DomStatsIoSource(new VirshShell(f.uri, 10_000)));
    try {
      await sampler.sample(Date.now());
      const s = await sampler.sample(Date.now());
      expect(sampler.infoCalls).toBe(2);
      expect(s.map((x) => x.name).sort()).toEqual(['kf-cpu-b', 'kf-cpu-c']);
      expect(s.every((x) => x.cpuPct !== null && x.ramKind === 'assigned')).toBe(true);
    } finally {
      await sampler.close();
      rmSync(f.dir, { recursive: true, force: true });
    }
  });
});
