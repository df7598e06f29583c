import type { Config } from '../config.js';
import type { LibvirtConnection } from '../adapters/libvirt/connection.js';
import type { Virsh } from '../adapters/virsh/virsh.js';
import type { QemuImg } from '../adapters/qemu-img/qemu-img.js';
import type { VirtInstall } from '../adapters/virt-install/virt-install.js';
import type { JobRunner } from './job-runner.js';
import type { Logger } from '../log.js';
import type { CommandRunner } from '../adapters/process/run-command.js';

/** Everything a service needs to act on the local node; built once in main.ts (or a test). */
export interface NodeContext {
  config: Config;
  conn: LibvirtConnection;
  virsh: Virsh;
  qemuImg: QemuImg;
  virtInstall: VirtInstall;
  jobs: JobRunner;
  /** The process adapter, for commands no other adapter wraps (virsh migrate, domjobinfo). */
  run: CommandRunner;
  log: Logger;
  /** Injected so tests of long waits do not sleep for real. */
  sleep: (ms: number) => Promise<void>;
}

export const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
