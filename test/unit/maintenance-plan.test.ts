import { describe, expect, it } from 'vitest';
import { planEvacuation } from '../../src/domain/maintenance/place.js';
import { predictMoveSeconds, scheduleEtaSec, FIXED_SEC } from '../../src/domain/maintenance/predict.js';
import { nextMoves, remainingSec, summarize, summarySentence, movesFromPlan, type MoveState } from '../../src/domain/maintenance/run-state.js';
import type { PeerRoom, PlanRequest, VmToPlace } from '../../src/domain/maintenance/types.js';
import { parsePlanAsk } from '../../src/services/maintenance/request.js';

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;
const vm = (name: string, memoryMiB: number, diskGiB = 1, running = true): VmToPlace => ({ name, uuid: `uuid-${name}`, running, memoryMiB, diskAllocatedBytes: diskGiB * GIB });
const peer = (name: string, freeMemoryMiB: number, freeDiskGiB = 100, unavailable: string | null = null): PeerRoom => ({ name, unavailable, freeMemoryMiB, freeDiskBytes: freeDiskGiB * GIB, linkBytesPerSec: 100e6 });
const req = (vms: VmToPlace[], peers: PeerRoom[], more: Partial<PlanRequest> = {}): PlanRequest => ({
  vms, peers, shutOff: 'stay', overrides: {}, refused: {}, memoryMarginMiB: 256, diskMarginBytes: 512 * MIB, ...more,
});

describe('planEvacuation', () => {
  it('places each VM where it fits after the VMs already placed, biggest first, and lists the one that fits nowhere', () => {
    // B has room for 1024 + margin, C for 512 + 256 + margin: the 1536 MiB VM fits nowhere.
    const plan = planEvacuation(req([vm('small', 256), vm('huge', 1536), vm('big', 1024), vm('mid', 512)], [peer('B', 1400), peer('C', 1100)]), 1);
    const by = Object.fromEntries(plan.entries.map((e) => [e.vm, e]));
    expect(plan.entries.map((e) => e.vm)).toEqual(['small', 'huge', 'big', 'mid']);
    expect(by.big).toMatchObject({ action: 'move', to: 'B', mode: 'live' });
    expect(by.mid).toMatchObject({ action: 'move', to: 'C' });
    expect(by.small).toMatchObject({ action: 'move', to: 'C' });
    expect(by.huge!.action).toBe('cannot');
    expect(by.huge!.reason).toBe('Cannot move: no node has room: B has 1400 MiB of RAM free, it needs 1536 MiB + 256 MiB margin; C has 1100 MiB of RAM free, it needs 1536 MiB + 256 MiB margin.');
  });

  it('never lets the placed VMs of one node eat its margin', () => {
    const plan = planEvacuation(req([vm('a', 400), vm('b', 400), vm('c', 400)], [peer('B', 1100)]), 1);
    // 1100 − 400 − 400 = 300 ≥ 256; a third would leave −100.
    expect(plan.entries.map((e) => e.action)).toEqual(['move', 'move', 'cannot']);
    expect(plan.entries[2]!.reason).toMatch(/^Cannot move: no node has room: B has 300 MiB of RAM free/);
  });

  it('checks disk room with its margin too', () => {
    const plan = planEvacuation(req([vm('a', 128, 3)], [peer('B', 8000, 3)]), 1);
    expect(plan.entries[0]!.reason).toBe('Cannot move: no node has room: B has 3.0 GiB of disk free, it needs 3.5 GiB with the margin.');
  });

  it('spreads VMs onto the node left with the most free RAM', () => {
    const plan = planEvacuation(req([vm('a', 256), vm('b', 256), vm('c', 256)], [peer('B', 2000), peer('C', 1900)]), 1);
    expect(plan.entries.map((e) => e.to)).toEqual(['B', 'C', 'B']);
  });

  it('leaves shut-off VMs by default and moves them offline (disk only, no RAM) when asked', () => {
    const vms = [vm('off', 4096, 1, false), vm('on', 256)];
    const stay = planEvacuation(req(vms, [peer('B', 600)]), 1);
    expect(stay.entries[0]).toMatchObject({ action: 'stay', reason: expect.stringMatching(/^Shut off; it stays/) });
    const offline = planEvacuation(req(vms, [peer('B', 600)], { shutOff: 'offline' }), 1);
    expect(offline.entries[0]).toMatchObject({ action: 'move', to: 'B', mode: 'offline', bytesToMove: GIB });
    expect(offline.entries[1]).toMatchObject({ action: 'move', to: 'B', mode: 'live', bytesToMove: GIB + 256 * MIB });
  });

  it('follows the admin: a chosen destination, an excluded VM', () => {
    const plan = planEvacuation(req([vm('a', 256), vm('b', 256)], [peer('B', 4000), peer('C', 1000)], { overrides: { a: 'C', b: 'exclude' } }), 1);
    expect(plan.entries[0]).toMatchObject({ action: 'move', to: 'C', reason: 'Moves to C, as chosen by the admin.' });
    expect(plan.entries[1]).toMatchObject({ action: 'stay', reason: expect.stringMatching(/^Excluded/) });
  });

  it('a chosen destination without room is a sentence, not a silent change of node', () => {
    const plan = planEvacuation(req([vm('a', 2048)], [peer('B', 4000), peer('C', 1000)], { overrides: { a: 'C' } }), 1);
    expect(plan.entries[0]!.action).toBe('cannot');
    expect(plan.entries[0]!.reason).toMatch(/C has 1000 MiB of RAM free/);
  });

  it('gives the pre-flight refusal as the reason when every node refused the VM', () => {
    const refusal = 'One device stops the move: hostdev 0000:01:00.0 is passed through.';
    const plan = planEvacuation(req([vm('gpu', 256)], [peer('B', 4000), peer('C', 4000)], { refused: { gpu: { B: refusal, C: refusal } } }), 1);
    expect(plan.entries[0]).toMatchObject({ action: 'cannot', reason: 'Cannot move: One device stops the move: hostdev 0000:01:00.0 is passed through.' });
  });

  it('tries the other node when one refused the VM in pre-flight', () => {
    const plan = planEvacuation(req([vm('a', 256)], [peer('B', 4000), peer('C', 1000)], { refused: { a: { B: 'A VM named a already exists on node B.' } } }), 1);
    expect(plan.entries[0]).toMatchObject({ action: 'move', to: 'C' });
  });

  it('skips nodes that cannot take VMs, saying why', () => {
    const plan = planEvacuation(req([vm('a', 256)], [peer('B', 4000, 100, 'it is in maintenance itself')]), 1);
    expect(plan.entries[0]!.reason).toBe('Cannot move: no node has room: B: it is in maintenance itself.');
    expect(planEvacuation(req([vm('a', 256)], []), 1).entries[0]!.reason).toBe('Cannot move: there is no other node to move it to.');
  });

  it('predicts the time from disk + RAM over the link, and the ETA per link in parallel', () => {
    const plan = planEvacuation(req([vm('a', 1000, 0), vm('b', 1000, 0), vm('c', 1000, 0)], [peer('B', 1500), peer('C', 2800)]), 1);
    const each = FIXED_SEC + (1000 * MIB) / 100e6;
    expect(plan.entries.every((e) => Math.abs(e.predictedSec - each) < 1e-9)).toBe(true);
    // C takes two (one after the other), B one: the ETA is C's two.
    expect(plan.etaSec).toBeCloseTo(2 * each, 6);
    expect(planEvacuation(req([vm('a', 1000, 0), vm('b', 1000, 0), vm('c', 1000, 0)], [peer('B', 1500), peer('C', 2800)]), 2).etaSec).toBeCloseTo(each, 6);
  });
});

describe('predictMoveSeconds / scheduleEtaSec', () => {
  it('counts RAM only for live moves', () => {
    expect(predictMoveSeconds({ diskAllocatedBytes: 100e6, memoryBytes: 100e6, live: true, linkBytesPerSec: 100e6 })).toBe(FIXED_SEC + 2);
    expect(predictMoveSeconds({ diskAllocatedBytes: 100e6, memoryBytes: 100e6, live: false, linkBytesPerSec: 100e6 })).toBe(FIXED_SEC + 1);
  });
  it('packs a link into lanes, longest first', () => {
    expect(scheduleEtaSec([{ link: 'B', seconds: 3 }, { link: 'B', seconds: 2 }, { link: 'B', seconds: 2 }, { link: 'C', seconds: 4 }], 2)).toBe(4);
    expect(scheduleEtaSec([], 1)).toBe(0);
  });
});

const move = (vm: string, to: string, status: MoveState['status'], percent = 0): MoveState => ({ vm, uuid: `u-${vm}`, from: 'A', to, mode: 'live', status, jobId: null, percent, predictedSec: 10, message: null });

describe('the run', () => {
  it('starts at most perLink moves per link, links in parallel, in plan order', () => {
    const moves = [move('a', 'B', 'pending'), move('b', 'B', 'pending'), move('c', 'C', 'pending'), move('d', 'C', 'running')];
    expect(nextMoves(moves, 1).map((m) => m.vm)).toEqual(['a']);
    expect(nextMoves(moves, 2).map((m) => m.vm)).toEqual(['a', 'b', 'c']);
    expect(nextMoves([move('a', 'B', 'moved'), move('b', 'B', 'failed'), move('c', 'B', 'pending')], 1).map((m) => m.vm)).toEqual(['c']);
  });

  it('says how long is left: what remains of the running moves and the pending ones, per link', () => {
    expect(remainingSec([move('a', 'B', 'running', 50), move('b', 'B', 'pending'), move('c', 'C', 'pending'), move('d', 'C', 'moved')], 1)).toBe(15);
    expect(remainingSec([move('a', 'B', 'moved')], 1)).toBe(0);
  });

  it('sums up moved / failed with reason / not started / stayed', () => {
    const moves = [move('a', 'B', 'moved'), { ...move('b', 'C', 'failed'), message: 'Migration of b to C was aborted.' }, move('c', 'C', 'not-started')];
    const s = summarize(moves);
    expect(s).toEqual({ moved: ['a'], failed: [{ vm: 'b', reason: 'Migration of b to C was aborted.' }], notStarted: ['c'] });
    expect(summarySentence('evacuation', s, 2)).toBe('Evacuation finished: 1 moved, 1 failed, 1 not started, 2 stayed. Failed: b (Migration of b to C was aborted.)');
  });

  it('turns the plan into pending moves, placed ones only', () => {
    const plan = planEvacuation(req([vm('a', 256), vm('x', 99999)], [peer('B', 4000)]), 1);
    expect(movesFromPlan(plan.entries, 'A')).toEqual([expect.objectContaining({ vm: 'a', from: 'A', to: 'B', status: 'pending', jobId: null })]);
  });
});

describe('parsePlanAsk', () => {
  const vms = ['web', 'db'];
  it('takes JSON overrides and the form fields to:<vm>', () => {
    expect(parsePlanAsk({ overrides: { web: 'B' }, 'to:db': 'exclude', shutOff: 'offline' }, vms, ['B', 'C'])).toEqual({ shutOff: 'offline', overrides: { web: 'B', db: 'exclude' } });
    expect(parsePlanAsk({ 'to:web': 'auto', 'to:db': '' }, vms, ['B'])).toEqual({ shutOff: 'stay', overrides: {} });
  });
  it('refuses unknown VMs, unknown nodes and bad policies with one sentence', () => {
    expect(() => parsePlanAsk({ overrides: { nope: 'B' } }, vms, ['B'])).toThrow('There is no VM named nope on this node.');
    expect(() => parsePlanAsk({ overrides: { web: 'Z' } }, vms, ['B'])).toThrow('The destination of web must be a peer node (B), "auto" or "exclude".');
    expect(() => parsePlanAsk({ overrides: ['web'] }, vms, ['B'])).toThrow(/overrides must be an object/);
    expect(() => parsePlanAsk({ shutOff: 'delete' }, vms, ['B'])).toThrow('shutOff must be one of: stay, offline.');
  });
});
