/** The `join:` section: where invite/join/remove read and write this node's SSH side. */
export interface JoinConfig {
  /** sshd's authorized_keys for root, where peers' restricted keys (and invites' bootstrap keys) go. */
  authorizedKeysFile: string;
  /** This node's SSH host public key, put in invites and told to new peers. */
  hostKeyFile: string;
  /** This node's own peer key (private; .pub beside it), made at the first invite or join; peers[].sshKeyFile of joined peers. */
  sshKeyFile: string;
  /** Where other nodes reach this one (sshd, migration data): LAN, public or tunnel address. Empty: listenHost when it is not a wildcard. */
  addresses: string[];
  /** The port of this node's sshd as peers reach it. */
  sshPort: number;
  /** This node's page as other nodes link to it (optional). */
  url: string | null;
}

const KEYS = ['authorizedKeysFile', 'hostKeyFile', 'sshKeyFile', 'addresses', 'sshPort', 'url'];

export function defaultJoinConfig(dataDir: string): JoinConfig {
  return { authorizedKeysFile: '/root/.ssh/authorized_keys', hostKeyFile: '/etc/ssh/ssh_host_ed25519_key.pub', sshKeyFile: `${dataDir}/peer_ed25519`, addresses: [], sshPort: 22, url: null };
}

export function parseJoinConfig(raw: unknown, dataDir: string, fail: (key: string, message: string) => never): JoinConfig {
  const d = defaultJoinConfig(dataDir);
  if (raw === undefined || raw === null) return d;
  if (typeof raw !== 'object' || Array.isArray(raw)) fail('join', `must be a mapping (${KEYS.join(', ')})`);
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KEYS.includes(k)) fail(`join.${k}`, `unknown key (known keys: ${KEYS.join(', ')})`);
  const path = (k: 'authorizedKeysFile' | 'hostKeyFile' | 'sshKeyFile'): string => {
    const v = o[k];
    if (v === undefined || v === null) return d[k];
    // The config path and key paths end up inside authorized_keys' command="…".
    if (typeof v !== 'string' || !/^\/[A-Za-z0-9_./-]+$/.test(v)) fail(`join.${k}`, 'must be an absolute path of plain characters');
    return v;
  };
  let addresses: string[] = [];
  if (o.addresses !== undefined && o.addresses !== null) {
    if (!Array.isArray(o.addresses) || o.addresses.length > 8) fail('join.addresses', 'must be a list of at most 8 addresses');
    addresses = (o.addresses as unknown[]).map((a, i) => {
      if (typeof a !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$/.test(a) || a.includes('..')) fail(`join.addresses[${i}]`, 'must be a host name or IP address');
      return a;
    });
  }
  let sshPort = d.sshPort;
  if (o.sshPort !== undefined && o.sshPort !== null) {
    if (typeof o.sshPort !== 'number' || !Number.isInteger(o.sshPort) || o.sshPort < 1 || o.sshPort > 65535) fail('join.sshPort', 'must be a whole number from 1 to 65535');
    sshPort = o.sshPort;
  }
  let url: string | null = null;
  if (o.url !== undefined && o.url !== null) {
    if (typeof o.url !== 'string' || !/^https?:\/\/[A-Za-z0-9.:[\]-]+(\/[A-Za-z0-9._~/-]*)?$/.test(o.url)) fail('join.url', 'must be an http(s) URL');
    url = o.url;
  }
  return { authorizedKeysFile: path('authorizedKeysFile'), hostKeyFile: path('hostKeyFile'), sshKeyFile: path('sshKeyFile'), addresses, sshPort, url };
}
