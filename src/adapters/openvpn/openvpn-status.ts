/** Parsers for what OpenVPN and iproute2 print; tested on output captured in the lab. */

export interface VpnClientRow {
  name: string;
  realAddress: string;
  tunnelAddress: string;
  bytesIn: number;
  bytesOut: number;
  since: string | null;
}

export type StatusFile =
  | { role: 'server'; updatedAt: string | null; clients: VpnClientRow[] }
  | { role: 'client'; updatedAt: string | null; tunBytesRead: number; tunBytesWritten: number };

const isoFromEpoch = (s: string | undefined): string | null => {
  const n = Number(s);
  return s && Number.isFinite(n) && n > 0 ? new Date(n * 1000).toISOString() : null;
};

/**
 * A server writes `--status-version 2` (CSV with HEADER/CLIENT_LIST rows); a client
 * always writes the plain "OpenVPN STATISTICS" block whatever the version asked.
 */
export function parseStatusFile(text: string): StatusFile | null {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  if (lines[0]?.startsWith('OpenVPN STATISTICS')) {
    const kv = new Map(lines.map((l) => l.split(',')).filter((p) => p.length >= 2).map((p) => [p[0]!, p.slice(1).join(',')]));
    const updated = kv.get('Updated');
    return {
      role: 'client',
      // Local time without a zone, as the node's clock shows it.
      updatedAt: updated && !Number.isNaN(Date.parse(updated.replace(' ', 'T'))) ? new Date(updated.replace(' ', 'T')).toISOString() : null,
      tunBytesRead: Number(kv.get('TUN/TAP read bytes') ?? 0),
      tunBytesWritten: Number(kv.get('TUN/TAP write bytes') ?? 0),
    };
  }
  if (!lines.some((l) => l.startsWith('TITLE,') || l.startsWith('HEADER,CLIENT_LIST'))) return null;
  const header = lines.find((l) => l.startsWith('HEADER,CLIENT_LIST,'))?.split(',').slice(2) ?? [];
  const col = (name: string) => header.indexOf(name);
  const clients: VpnClientRow[] = [];
  for (const l of lines) {
    if (!l.startsWith('CLIENT_LIST,')) continue;
    const f = l.split(',').slice(1);
    const get = (name: string, fallback: number) => f[col(name) >= 0 ? col(name) : fallback] ?? '';
    clients.push({
      name: get('Common Name', 0),
      realAddress: get('Real Address', 1),
      tunnelAddress: get('Virtual Address', 2),
      bytesIn: Number(get('Bytes Received', 4)) || 0,
      bytesOut: Number(get('Bytes Sent', 5)) || 0,
      since: isoFromEpoch(get('Connected Since (time_t)', 7)),
    });
  }
  const time = lines.find((l) => l.startsWith('TIME,'))?.split(',');
  return { role: 'server', updatedAt: isoFromEpoch(time?.[2]), clients };
}

/** `ip -j addr show dev X` → its first IPv4 address as "a.b.c.d/len", or null. */
export function parseIpAddr(json: string): string | null {
  try {
    const links = JSON.parse(json) as { addr_info?: { family?: string; local?: string; prefixlen?: number }[] }[];
    const a = links[0]?.addr_info?.find((x) => x.family === 'inet' && x.local);
    return a ? `${a.local}/${a.prefixlen}` : null;
  } catch {
    return null;
  }
}

/** `ip -j -s link show dev X` → the device's byte counters (what crossed the tunnel). */
export function parseIpLinkStats(json: string): { rxBytes: number; txBytes: number } | null {
  try {
    const links = JSON.parse(json) as { stats64?: { rx?: { bytes?: number }; tx?: { bytes?: number } } }[];
    const s = links[0]?.stats64;
    return s ? { rxBytes: Number(s.rx?.bytes ?? 0), txBytes: Number(s.tx?.bytes ?? 0) } : null;
  } catch {
    return null;
  }
}

/** The client side of a config: which server it dials and which name it insists on. */
export function parseClientConfig(text: string): { remote: string | null; serverName: string | null } {
  const remote = /^\s*remote\s+(\S+)(?:\s+(\d+))?/m.exec(text);
  const name = /^\s*verify-x509-name\s+(\S+)/m.exec(text);
  return { remote: remote ? `${remote[1]}${remote[2] ? `:${remote[2]}` : ''}` : null, serverName: name?.[1] ?? null };
}
