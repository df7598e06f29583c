import { createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A libvirtd that accepts connections and never answers — what a SIGSTOPped libvirtd looks
 * like to a client (the kernel still accepts on its socket). `uri` reaches it through libvirt's
 * own client; `sockets` are the connections it accepted; `hangUp` gives each its EOF, so the
 * libvirt calls blocked on them return.
 */
export interface HungLibvirtd {
  uri: string;
  dir: string;
  sockets: Socket[];
  hangUp(): void;
  close(): Promise<void>;
}

export async function startHungLibvirtd(): Promise<HungLibvirtd> {
  const dir = mkdtempSync(join(tmpdir(), 'kf-hung-'));
  const sockets: Socket[] = [];
  const server: Server = createServer((s) => {
    sockets.push(s);
    s.on('error', () => undefined);
  });
  const path = join(dir, 'libvirt-sock');
  await new Promise<void>((r) => server.listen(path, r));
  const hangUp = () => {
    for (const s of sockets.splice(0)) s.destroy();
  };
  return {
    uri: `qemu+unix:///system?socket=${path}`,
    dir,
    sockets,
    hangUp,
    close: async () => {
      hangUp();
      await new Promise((r) => server.close(r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
