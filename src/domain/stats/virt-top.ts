/**
 * Parser for `virt-top --stream` / `--batch` output, frame by frame. virt-top computes %CPU
 * from the difference to its previous frame, so the first frame of a process always shows 0:
 * the sampler keeps one virt-top running and uses frames after the first.
 */
export interface VirtTopDomain {
  id: number | null;
  state: string;
  rdrq: number;
  wrrq: number;
  rxby: number;
  txby: number;
  cpuPct: number;
  memPct: number;
  time: string;
  name: string;
}

export interface VirtTopFrame {
  time: string;
  host: string | null;
  cpusActive: number;
  cpusTotal: number;
  mhz: number;
  hostMemMB: number;
  domains: VirtTopDomain[];
}

// "virt-top time  11:15:02 Host node1 x86_64 8/8CPU 2493MHz 15946MB" (stream) or "virt-top 11:15:02 - x86_64 …" (batch).
const HEADER = /^virt-top\s+(?:time\s+)?(\d{1,2}:\d{2}:\d{2})\s+(?:Host\s+)?(\S+)\s+\S+\s+(\d+)\/(\d+)CPU\s+(\d+)MHz\s+(\d+)MB/;

/** "48K" → 49152, "1.5M" → 1572864, "2104" → 2104 (virt-top shortens large counters with K/M/G). */
export function parseVirtTopNumber(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)$/.exec(s.trim());
  if (!m) throw new Error(`virt-top: "${s}" is not a number`);
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2] as '' | 'K' | 'M' | 'G' | 'T'];
  return Number(m[1]) * mult;
}

function parseHeader(line: string): VirtTopFrame | null {
  const m = HEADER.exec(line.trim());
  if (!m) return null;
  return {
    time: m[1]!,
    host: m[2] === '-' ? null : m[2]!,
    cpusActive: Number(m[3]),
    cpusTotal: Number(m[4]),
    mhz: Number(m[5]),
    hostMemMB: Number(m[6]),
    domains: [],
  };
}

function parseRow(columns: string[], line: string): VirtTopDomain | null {
  const words = line.trim().split(/\s+/);
  const nameAt = columns.indexOf('NAME');
  if (nameAt < 0 || words.length < columns.length) return null;
  const get = (c: string) => words[columns.indexOf(c)] ?? '0';
  const num = (c: string) => (columns.includes(c) ? parseVirtTopNumber(get(c)) : 0);
  try {
    return {
      id: /^\d+$/.test(get('ID')) ? Number(get('ID')) : null,
      state: get('S'),
      rdrq: num('RDRQ'),
      wrrq: num('WRRQ'),
      rxby: num('RXBY'),
      txby: num('TXBY'),
      cpuPct: num('%CPU'),
      memPct: num('%MEM'),
      time: get('TIME'),
      // NAME is the last column and may contain spaces.
      name: words.slice(nameAt).join(' '),
    };
  } catch {
    return null;
  }
}

/** Incremental: feed chunks as they arrive; a frame is complete when the next one starts (or on end()). */
export class VirtTopStreamParser {
  private buffer = '';
  private frame: VirtTopFrame | null = null;
  private columns: string[] | null = null;

  push(chunk: string): VirtTopFrame[] {
    this.buffer += chunk;
    const lines = this.buffer.split('\n');
    this.buffer = lines.pop() ?? '';
    const done: VirtTopFrame[] = [];
    for (const line of lines) {
      const f = this.line(line);
      if (f) done.push(f);
    }
    return done;
  }

  end(): VirtTopFrame[] {
    const done = this.buffer ? this.push('\n') : [];
    const last = this.frame;
    this.frame = null;
    return last ? [...done, last] : done;
  }

  private line(raw: string): VirtTopFrame | null {
    const line = raw.replace(/\r$/, '');
    const header = parseHeader(line);
    if (header) {
      const finished = this.frame;
      this.frame = header;
      this.columns = null;
      return finished;
    }
    if (!this.frame) return null;
    const words = line.trim().split(/\s+/);
    if (words.includes('NAME') && words.includes('%CPU')) {
      this.columns = words;
      return null;
    }
    // Summary lines ("3 domains, …", "CPU: 1.2% Mem: …") and blanks are not domain rows.
    if (this.columns && words.length >= this.columns.length) {
      const row = parseRow(this.columns, line);
      if (row) this.frame.domains.push(row);
    }
    return null;
  }
}

export function parseVirtTopOutput(text: string): VirtTopFrame[] {
  const p = new VirtTopStreamParser();
  return [...p.push(text), ...p.end()];
}
