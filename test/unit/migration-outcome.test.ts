import { describe, expect, it } from 'vitest';
import { parseDomstateReason, settleInterrupted, UNKNOWN } from '../../src/domain/migration-outcome.js';

const names = { vm: 'web', from: 'a', to: 'b' };
const s = (state: string, reason: string | null = null) => ({ state, reason });

describe('where a VM is after an interrupted migration', () => {
  it('reads virsh domstate --reason', () => {
    expect(parseDomstateReason('paused (migration)\n\n')).toEqual(s('paused', 'migration'));
    expect(parseDomstateReason('shut off (migrated)')).toEqual(s('shut off', 'migrated'));
    expect(parseDomstateReason('running')).toEqual(s('running'));
    expect(parseDomstateReason('')).toBeNull();
  });

  it('live: running on the destination only → moved', () => {
    expect(settleInterrupted('live', null, s('running', 'migrated'), names)).toEqual({ kind: 'moved' });
  });

  it('live: running there and paused or shut off here (killed between finish and confirm) → needs attention, never resumed', () => {
    for (const here of [s('paused', 'migration'), s('shut off', 'migrated'), s('running', 'unpaused')]) {
      const v = settleInterrupted('live', here, s('running', 'migrated'), names);
      expect(v.kind).toBe('attention');
      expect(v.kind === 'attention' && v.why).toMatch(/runs on b .*do not start the one on a/);
    }
  });

  it('live: paused there and gone here → moved and resumed there only when kvm-ferry paused it for its copy', () => {
    expect(settleInterrupted('live', null, s('paused', 'user'), names, true)).toEqual({ kind: 'moved', resumeDestination: true });
    expect(settleInterrupted('live', null, s('paused', 'user'), names).kind).toBe('attention');
    // Still here: the paused copy there is a half-arrived one and is never resumed.
    expect(settleInterrupted('live', s('paused', 'user'), s('paused', 'incoming migration'), names, true)).toEqual({ kind: 'not-moved' });
    // Destination unreachable (a cut link): the source kvm-ferry paused is still the current copy.
    expect(settleInterrupted('live', s('paused', 'user'), UNKNOWN, names, true)).toEqual({ kind: 'not-moved' });
    expect(settleInterrupted('live', s('paused', 'user'), UNKNOWN, names).kind).toBe('attention');
  });

  it('live: still here, not running there (paused incoming or absent) → not moved', () => {
    expect(settleInterrupted('live', s('paused', 'migration'), s('paused', 'incoming migration'), names)).toEqual({ kind: 'not-moved' });
    expect(settleInterrupted('live', s('running'), null, names)).toEqual({ kind: 'not-moved' });
  });

  it('live: destination unreachable → only a running source is safely "not moved"', () => {
    expect(settleInterrupted('live', s('running'), UNKNOWN, names)).toEqual({ kind: 'not-moved' });
    expect(settleInterrupted('live', s('paused', 'migration'), UNKNOWN, names).kind).toBe('attention');
    expect(settleInterrupted('live', null, UNKNOWN, names).kind).toBe('attention');
  });

  it('on neither node → needs attention', () => {
    expect(settleInterrupted('live', null, null, names).kind).toBe('attention');
    expect(settleInterrupted('offline', null, null, names).kind).toBe('attention');
  });

  it('offline: defined there only → moved; still here → not moved', () => {
    expect(settleInterrupted('offline', null, s('shut off'), names)).toEqual({ kind: 'moved' });
    expect(settleInterrupted('offline', s('shut off'), s('shut off'), names)).toEqual({ kind: 'not-moved' });
    expect(settleInterrupted('offline', s('shut off'), UNKNOWN, names)).toEqual({ kind: 'not-moved' });
  });
});
