import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/paths.js';
import { makeFixture } from '../helpers/fixture.js';

/**
 * The README's deploy steps on a "fresh node": scripts/install-site.sh run for real
 * (no DESTDIR) against Debian's own /etc/nginx — but inside a private mount namespace
 * where /etc and /var are overlays with a throw-away upper layer and /run is empty,
 * and in a network namespace of the test's own, so
 * the machine's real files and ports are never touched. Then Debian's nginx (workers as
 * www-data, reading the htpasswd through its group) in front of the manager. systemd is
 * not PID 1 here, so the script's own "start by hand" path is taken.
 */
const ns = `kfdp-site-${randomBytes(3).toString('hex')}`;
const scratch = mkdtempSync(join(tmpdir(), 'kfdp-site-'));

afterAll(() => {
  spawnSync('ip', ['netns', 'del', ns]);
  rmSync(scratch, { recursive: true, force: true });
});

describe('install-site.sh on a fresh node (private namespaces)', () => {
  it('installs a site Debian\'s nginx serves: 401 without a password, 200 with it, unknown names dropped', () => {
    if (process.getuid?.() !== 0) throw new Error('this end-to-end test must run as root (namespaces, nginx as www-data)');
    const f = makeFixture([{ name: 'kfdp-web' }]);
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const script = String.raw`
set -euo pipefail
S="$1"; ROOT="$2"; URI="$3"
mount --make-rprivate /
# Every write to /etc and /var lands in a scratch upper layer that vanishes with the namespace.
mkdir -p "$S/ov" && mount -t tmpfs tmpfs "$S/ov"
for d in etc var; do
  mkdir -p "$S/ov/$d-up" "$S/ov/$d-work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$S/ov/$d-up,workdir=$S/ov/$d-work" "/$d"
done
mount -t tmpfs tmpfs /run
echo "== install"
echo 'fresh node pass' | "$ROOT/scripts/install-site.sh" --server-name node1.test --listen 80 2>&1
echo "== htpasswd $(stat -c '%a %U:%G' /etc/nginx/kvm-ferry.htpasswd)"
# As the README says: edit the config (here: libvirt's test driver instead of this host's VMs).
sed -i "s|^libvirtUri: .*|libvirtUri: $URI|; s|^# nodeName: node1|nodeName: node1|" /etc/kvm-ferry/config.yaml
cd "$ROOT"
KVM_FERRY_CONFIG=/etc/kvm-ferry/config.yaml node --import tsx src/main.ts > "$S/manager.log" 2>&1 &
mgr=$!
nginx
trap 'nginx -s stop 2>/dev/null || true; kill $mgr 2>/dev/null || true' EXIT
for i in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:8080/healthz && break; sleep 0.2; done
code() { curl -s -o /dev/null -w '%{http_code}' "$@" || true; }
echo "== anonymous $(code -H 'Host: node1.test' http://127.0.0.1/)"
echo "== wrong $(code -u admin:nope -H 'Host: node1.test' http://127.0.0.1/)"
echo "== admin $(code -u 'admin:fresh node pass' -H 'Host: node1.test' http://127.0.0.1/api/nodes/node1/vms)"
echo "== vms $(curl -s -u 'admin:fresh node pass' -H 'Host: node1.test' http://127.0.0.1/api/nodes/node1/vms)"
echo "== other-host $(code -u 'admin:fresh node pass' -H 'Host: 10.1.2.3' http://127.0.0.1/)"
echo "== workers $(ps -o user= -C nginx | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
`;
    const r = spawnSync('ip', ['netns', 'exec', ns, 'unshare', '--mount', '--propagation', 'private', 'bash', '-c', script, 'site', scratch, projectRoot(), f.uri], { encoding: 'utf8', timeout: 120_000 });
    const out = r.stdout + r.stderr;
    const line = (k: string) => new RegExp(`^== ${k} (.*)$`, 'm').exec(out)?.[1] ?? `(no "${k}" line)\n${out}`;
    expect(r.status, out).toBe(0);
    expect(out).toMatch(/added user admin/);
    expect(out).toMatch(/disabled nginx's default site/);
    expect(out).toMatch(/systemd is not running here: start by hand/);
    expect(line('htpasswd')).toBe('640 root:www-data');
    expect(line('anonymous')).toBe('401');
    expect(line('wrong')).toBe('401');
    expect(line('admin')).toBe('200');
    expect(JSON.parse(line('vms')).map((v: { name: string }) => v.name)).toEqual(['kfdp-web']);
    expect(line('other-host')).toBe('000');
    expect(line('workers')).toMatch(/www-data/);
  });
});
