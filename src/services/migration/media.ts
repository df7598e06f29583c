import { buildChangeMediaArgs } from '../../adapters/virsh/migrate-args.js';
import type { PlanItem } from '../../domain/migration-plan/types.js';
import type { NodeContext } from '../node-context.js';
import type { EjectedMedia } from './settle.js';

/** Ejects a plan's "eject" item on the source (running VM and its definition). */
export async function ejectMedia(ctx: NodeContext, uuid: string, item: PlanItem, running: boolean): Promise<EjectedMedia> {
  const target = item.target!;
  await ctx.run('virsh', buildChangeMediaArgs(ctx.config.libvirtUri, uuid, target, 'eject', running), {
    timeoutMs: 30_000, failureMessage: `Could not eject ${item.path} from ${target}.`,
  });
  return { target, path: item.path!, running };
}

/** Puts ejected media back after a failed move, so the VM is as it was. Best effort, says what failed. */
export async function reinsertMedia(ctx: NodeContext, uuid: string, media: EjectedMedia[], running: boolean): Promise<string[]> {
  const problems: string[] = [];
  for (const m of media) {
    const r = await ctx.run('virsh', buildChangeMediaArgs(ctx.config.libvirtUri, uuid, m.target, { insert: m.path }, running), { timeoutMs: 30_000, check: false });
    if (r.exitCode !== 0) problems.push(`${m.path} could not be re-inserted into ${m.target} (${r.stderr.trim().split('\n')[0]})`);
  }
  return problems;
}
