import { Router, type Response } from 'express';
import { requireVmName } from '../domain/names.js';
import { AppError } from '../errors.js';
import type { AppDeps } from '../app.js';
import { sparkPath } from '../domain/stats/sparkline.js';
import { STATS_RANGES } from '../domain/stats/sample.js';
import { IO_LABELS } from '../domain/stats/io.js';
import { emptyIo, type StatsSeries } from '../adapters/db/stats-reader.js';
import type { Vm } from '../domain/vm.js';

const CHART_W = 720;
const CHART_H = 160;
const RANGE_SECONDS = { '1h': 3600, '24h': 86400, '7d': 7 * 86400, '30d': 30 * 86400 } as const;

/**
 * The VM detail page: charts drawn as SVG on the server (the page works without JS);
 * public/vm-charts.js swaps them for interactive uPlot charts fed by the JSON API.
 */
export function statsPageRoutes(deps: AppDeps): Router {
  const r = Router();
  const { node } = deps;

  r.get('/nodes/:node/vms/:vm', async (req, res) => {
    if (req.params.node !== node.name && deps.peers.get(req.params.node)) return renderPeer(req.params.node, req.params.vm, req.query.range, res);
    if (req.params.node !== node.name) throw new AppError('NODE_NOT_FOUND', `Node ${String(req.params.node)} is not known to this manager.`);
    let vm: Vm | null = null;
    const history = await deps.stats.history(req.params.vm, req.query.range, async (name) => {
      vm = await node.inventory.get(name).catch(() => null);
      return vm !== null;
    });
    if (!vm) vm = await node.inventory.get(history.vm).catch(() => null);
    const p = history.points;
    const to = Math.floor(Date.now() / 1000);
    const from = to - RANGE_SECONDS[history.range];
    const memory = (vm as Vm | null)?.memoryMiB ?? 0;
    res.render('vm', {
      nodeName: node.name,
      statsNode: node.name,
      vm,
      history,
      ranges: STATS_RANGES,
      chart: { w: CHART_W, h: CHART_H },
      cpuPath: sparkPath(p.t, p.cpu, from, to, CHART_W, CHART_H, 100),
      cpuMaxPath: sparkPath(p.t, p.cpuMax, from, to, CHART_W, CHART_H, 100),
      ramPath: sparkPath(p.t, p.ram, from, to, CHART_W, CHART_H, Math.max(memory, 1, ...p.ramMax)),
      io: ioPaths(p, from, to),
      ioLabels: IO_LABELS,
    });
  });

  /**
   * A VM on a peer node: the history lives on that node, so the page is an empty frame whose
   * script fetches /api/nodes/<peer>/vms/<vm>/stats — answered through the peer proxy.
   */
  function renderPeer(peer: string, vmRaw: unknown, rangeRaw: unknown, res: Response) {
    const vm = requireVmName(vmRaw, 'vm');
    const range = deps.stats.parseRange(rangeRaw);
    const empty = { d: '', last: null, max: 0 };
    const points: StatsSeries = { resolutionSec: 0, t: [], cpu: [], cpuMax: [], ram: [], ramMax: [], io: emptyIo() };
    res.render('vm', {
      nodeName: node.name,
      statsNode: peer,
      vm: null,
      history: { node: peer, vm, uuid: null, range, ramKind: null, ramLabel: 'RAM as recorded on that node', daemonAgeSec: -1, points },
      ranges: STATS_RANGES,
      chart: { w: CHART_W, h: CHART_H },
      cpuPath: empty,
      cpuMaxPath: empty,
      ramPath: empty,
      io: ioPaths(points, 0, 1),
      ioLabels: IO_LABELS,
    });
  }

  return r;
}

/** Server-drawn disk and network charts: read and write (in and out) share one scale so they compare. */
function ioPaths(p: StatsSeries, from: number, to: number) {
  const top = (...cols: (number | null)[][]) => Math.max(1, ...cols.flat().filter((v): v is number => v !== null));
  const diskMax = top(p.io.diskRdBytes, p.io.diskWrBytes);
  const netMax = top(p.io.netInBytes, p.io.netOutBytes);
  return {
    diskRd: sparkPath(p.t, p.io.diskRdBytes, from, to, CHART_W, CHART_H, diskMax),
    diskWr: sparkPath(p.t, p.io.diskWrBytes, from, to, CHART_W, CHART_H, diskMax),
    netIn: sparkPath(p.t, p.io.netInBytes, from, to, CHART_W, CHART_H, netMax),
    netOut: sparkPath(p.t, p.io.netOutBytes, from, to, CHART_W, CHART_H, netMax),
    diskMax,
    netMax,
  };
}
