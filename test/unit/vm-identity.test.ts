import { describe, expect, it } from 'vitest';
import { isUuid, requireUuid } from '../../src/domain/uuid.js';
import { parseUuidNameList } from '../../src/services/console/vnc-endpoint.js';

describe('UUIDs as the only domain identifier', () => {
  it('accepts libvirt\'s canonical form, any case, and answers lower-case', () => {
    expect(requireUuid('0F8FAD5B-d9cb-469f-A165-70867728950e')).toBe('0f8fad5b-d9cb-469f-a165-70867728950e');
    expect(isUuid('0f8fad5b-d9cb-469f-a165-70867728950e')).toBe(true);
  });

  // Every one of these is something virsh would resolve some other way (id, name, loose UUID parse).
  for (const bad of ['1', '4', 'web-01', '0f8fad5bd9cb469fa16570867728950e', '0f8fad5b d9cb 469f a165 70867728950e', '0f8fad5b-d9cb-469f-a165-70867728950e\n', '--domain', '', null, 42]) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      expect(isUuid(bad)).toBe(false);
      expect(() => requireUuid(bad)).toThrow(/UUID/);
    });
  }
});

describe('parseUuidNameList (virsh list --all --uuid --name on a peer)', () => {
  it('maps each exact name to its UUID, including all-digit, UUID-shaped and spaced names', () => {
    const out = [
      '0f8fad5b-d9cb-469f-a165-70867728950e 1',
      '7c9e6679-7425-40de-944b-e07fc1f90ae7 0f8fad5b-d9cb-469f-a165-70867728950e',
      '16fd2706-8baf-433b-82eb-8c7fada847da my vm',
      '',
      '',
    ].join('\n');
    const m = parseUuidNameList(out);
    expect([...m]).toEqual([
      ['1', '0f8fad5b-d9cb-469f-a165-70867728950e'],
      ['0f8fad5b-d9cb-469f-a165-70867728950e', '7c9e6679-7425-40de-944b-e07fc1f90ae7'],
      ['my vm', '16fd2706-8baf-433b-82eb-8c7fada847da'],
    ]);
  });
});
