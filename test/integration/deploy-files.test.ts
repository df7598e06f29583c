import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../src/paths.js';
import { freeLoopbackPort, renderSite } from '../helpers/nginx.js';

const ROOT = projectRoot();
const UNITS = ['kvm-ferry.service', 'kvm-ferry-stats.service'];

function installSite(destdir: string, args: string[], input: string, env: Record<string, string> = {}) {
  return spawnSync(join(ROOT, 'scripts/install-site.sh'), args, { input, encoding: 'utf8', env: { ...process.env, DESTDIR: destdir, ...env } });
}

describe('systemd units', () => {
  it('pass systemd-analyze verify without a single warning', () => {
    for (const u of UNITS) {
      const r = spawnSync('systemd-analyze', ['verify', join(ROOT, 'config/systemd', u)], { encoding: 'utf8' });
      expect(r.status, u).toBe(0);
      expect((r.stdout + r.stderr).trim(), u).toBe('');
    }
  });

  it('are hardened: offline security exposure below 5 (of 10)', () => {
    for (const u of UNITS) {
      const out = execFileSync('systemd-analyze', ['security', '--offline=yes', join(ROOT, 'config/systemd', u)], { encoding: 'utf8' });
      const level = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(out)?.[1]);
      expect(level, u).toBeLessThan(5);
    }
  });
});

describe('scripts/install-site.sh', () => {
  it('installs units, config, nginx site and a bcrypt admin from stdin; a second run keeps what exists', async () => {
    const dest = mkdtempSync(join(tmpdir(), 'kvm-ferry-site-'));
    mkdirSync(join(dest, 'etc/nginx/sites-enabled'), { recursive: true });
    execFileSync('ln', ['-s', '/etc/nginx/sites-available/default', join(dest, 'etc/nginx/sites-enabled/default')]);
    const port = await freeLoopbackPort();
    const args = ['--server-name', 'node1.example.lan node1', '--listen', `127.0.0.1:${port}`];
    const r = installSite(dest, args, 'correct horse battery\n');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);

    for (const u of UNITS) {
      const text = readFileSync(join(dest, 'etc/systemd/system', u), 'utf8');
      expect(text).toContain(`ExecStart=/usr/bin/node ${ROOT}/dist/`);
      expect(text).not.toContain('/opt/kvm-ferry');
    }
    expect(readFileSync(join(dest, 'etc/kvm-ferry/config.yaml'), 'utf8')).toBe(readFileSync(join(ROOT, 'config/kvm-ferry.example.yaml'), 'utf8'));
    // The installed site is the template the e2e test runs behind a real nginx.
    const site = readFileSync(join(dest, 'etc/nginx/sites-available/kvm-ferry'), 'utf8');
    expect(site).toBe(renderSite({ LISTEN: `127.0.0.1:${port}`, SERVER_NAME: 'node1.example.lan node1', UPSTREAM: '127.0.0.1:8080', CONSOLE_UPSTREAM: '127.0.0.1:8080', HTPASSWD: '/etc/nginx/kvm-ferry.htpasswd', PROXY_SECRET_CONF: '/etc/nginx/kvm-ferry-proxy.conf' }));
    // The secret nginx adds is the manager's own proxy.key, in a file only root reads.
    const key = readFileSync(join(dest, 'var/lib/kvm-ferry/proxy.key'), 'utf8').trim();
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(statSync(join(dest, 'var/lib/kvm-ferry/proxy.key')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dest, 'etc/nginx/kvm-ferry-proxy.conf'), 'utf8')).toContain(`proxy_set_header X-Kvm-Ferry-Proxy "${key}";`);
    expect(statSync(join(dest, 'etc/nginx/kvm-ferry-proxy.conf')).mode & 0o777).toBe(0o600);
    expect(readlinkSync(join(dest, 'etc/nginx/sites-enabled/kvm-ferry'))).toBe('../sites-available/kvm-ferry');
    expect(existsSync(join(dest, 'etc/nginx/sites-enabled/default'))).toBe(false);

    const ht = join(dest, 'etc/nginx/kvm-ferry.htpasswd');
    expect(readFileSync(ht, 'utf8')).toMatch(/^admin:\$2y\$08\$/);
    expect(statSync(ht).mode & 0o777).toBe(0o640);
    expect(spawnSync('htpasswd', ['-v', '-i', ht, 'admin'], { input: 'correct horse battery' }).status).toBe(0);
    expect(spawnSync('htpasswd', ['-v', '-i', ht, 'admin'], { input: 'wrong' }).status).not.toBe(0);

    // nginx accepts the installed site.
    const conf = join(dest, 'nginx-test.conf');
    // The site includes the secret by its installed (absolute) path: here that is under DESTDIR.
    const siteHere = join(dest, 'site-under-destdir.conf');
    writeFileSync(siteHere, site.replaceAll('/etc/nginx/kvm-ferry-proxy.conf', `${dest}/etc/nginx/kvm-ferry-proxy.conf`));
    writeFileSync(conf, `pid ${dest}/nginx.pid; error_log ${dest}/error.log; events {} http { access_log off; include ${siteHere}; }`);
    const t = spawnSync('/usr/sbin/nginx', ['-t', '-q', '-p', dest, '-e', `${dest}/error.log`, '-c', conf], { encoding: 'utf8' });
    expect(t.stderr).toBe('');
    expect(t.status).toBe(0);

    // Second run: the admin's edits and password survive, nothing is rewritten.
    writeFileSync(join(dest, 'etc/kvm-ferry/config.yaml'), 'nodeName: edited\n');
    const before = readFileSync(ht, 'utf8');
    const again = installSite(dest, args, 'another password\n');
    expect(again.status).toBe(0);
    expect(again.stdout).not.toMatch(/installed \/|created|added user/);
    expect(readFileSync(join(dest, 'etc/kvm-ferry/config.yaml'), 'utf8')).toBe('nodeName: edited\n');
    expect(readFileSync(ht, 'utf8')).toBe(before);

    // A second user through the environment variable.
    const bob = installSite(dest, [...args, '--admin', 'bob'], '', { KVM_FERRY_ADMIN_PASSWORD: 'bobs password' });
    expect(bob.status).toBe(0);
    expect(spawnSync('htpasswd', ['-v', '-i', ht, 'bob'], { input: 'bobs password' }).status).toBe(0);
  });

  it('refuses hostile option values and short passwords, writing nothing', () => {
    const dest = mkdtempSync(join(tmpdir(), 'kvm-ferry-site-'));
    const bad = [
      [['--admin', 'x;rm -rf /'], 'long enough pw\n', /--admin must be/],
      [['--server-name', 'a; include /etc/shadow'], 'long enough pw\n', /--server-name must be/],
      [['--listen', '80; return 200'], 'long enough pw\n', /--listen must look like/],
      [[], 'short\n', /at least 8 characters/],
    ] as const;
    for (const [args, input, msg] of bad) {
      const r = installSite(dest, [...args], input);
      expect(r.status, args.join(' ')).not.toBe(0);
      expect(r.stderr).toMatch(msg);
    }
    expect(existsSync(join(dest, 'etc'))).toBe(false);
  });
});
