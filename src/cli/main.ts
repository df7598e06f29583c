#!/usr/bin/env node
/**
 * kvm-ferry — the command line for what is not a page click:
 *   kvm-ferry node invite [--ttl 15m] [--address A]…   prints a single-use token
 *   kvm-ferry node join <token> [--address A]          joins the cluster of the node that made it
 *   kvm-ferry node remove <name>                       takes a node out of every member
 * The config is KVM_FERRY_CONFIG or /etc/kvm-ferry/config.yaml (as for the manager).
 * A refusal is one sentence on stderr and exit status 1; nothing was changed.
 */
import { loadConfig } from '../config.js';
import { parseTtl } from '../domain/join/token.js';
import { JoinService } from '../services/join/join-service.js';

const USAGE = 'usage: kvm-ferry node invite [--ttl 15m] [--address A]… | node join <token> [--address A] | node remove <name>';

async function main(argv: string[]): Promise<number> {
  const [group, cmd, ...rest] = argv;
  if (group !== 'node' || !cmd) return fail(USAGE);
  const addresses: string[] = [];
  let ttlMs: number | undefined;
  const positional: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '--address' && rest[i + 1]) addresses.push(rest[++i]!);
    else if (a === '--ttl' && rest[i + 1]) {
      const t = parseTtl(rest[++i]!);
      if (typeof t !== 'number') return fail(t.error);
      ttlMs = t;
    } else if (a.startsWith('--')) return fail(`unknown option ${a}; ${USAGE}`);
    else positional.push(a);
  }
  const config = loadConfig();
  // libvirt takes /etc/pki/libvirt-migrate as its migration directory only if it existed when libvirtd started.
  const RESTART_NOTE = `Migration certificates were made in ${config.migrationTlsDir} from the cluster CA; restart libvirtd once (systemctl restart libvirtd) unless qemu.conf names that directory (migrate_tls_x509_cert_dir).`;
  const service = JoinService.open(config);
  try {
    switch (cmd) {
      case 'invite': {
        if (positional.length) return fail(USAGE);
        const r = service.invite({ ...(ttlMs ? { ttlMs } : {}), addresses });
        if (r.certificatesIssued) process.stderr.write(`${RESTART_NOTE}\n`);
        process.stderr.write(`Invite valid until ${new Date(r.expiresAtMs).toISOString()}, for one node. On the new node run:\n  kvm-ferry node join <token>\n`);
        process.stdout.write(`${r.token}\n`);
        return 0;
      }
      case 'join': {
        if (positional.length !== 1) return fail('give exactly one token: kvm-ferry node join <token>');
        const r = await service.join(positional[0]!, addresses[0] ? { address: addresses[0] } : {});
        process.stderr.write(`Joined ${r.inviter}${r.peers.length ? ` and its members ${r.peers.join(', ')}` : ''}.${r.certificates === 'issued' ? ` ${RESTART_NOTE}` : ''}\n`);
        if (r.certificateProblem) process.stderr.write(`${r.certificateProblem}\n`);
        return 0;
      }
      case 'remove': {
        if (positional.length !== 1) return fail('give exactly one node name: kvm-ferry node remove <name>');
        const r = await service.remove(positional[0]!);
        process.stderr.write(`Removed ${positional[0]}${r.told.length ? `; also from ${r.told.join(', ')}` : ''}.${r.unreachable.length ? ` Not reachable (run remove there too): ${r.unreachable.join(', ')}.` : ''}\n`);
        return r.unreachable.length ? 2 : 0;
      }
      default:
        return fail(USAGE);
    }
  } finally {
    service.close();
  }
}

function fail(message: string): number {
  process.stderr.write(`kvm-ferry: ${message}\n`);
  return 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: Error) => {
    process.exitCode = fail(e.message);
  },
);
