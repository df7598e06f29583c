import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { buildMigrationPlan } from '../../src/domain/migration-plan/build-plan.js';
import { factsWanted } from '../../src/domain/migration-plan/facts-wanted.js';
import { expectGolden } from '../helpers/golden.js';
import { loadPlanFixture } from '../helpers/plan-fixture.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'domains');
const NAMES = readdirSync(DIR).filter((f) => f.endsWith('.xml')).map((f) => f.slice(0, -4)).sort();

describe('migration plan over domain XML fixtures', () => {
  it('has at least 25 fixtures', () => {
    expect(NAMES.length).toBeGreaterThanOrEqual(25);
  });

  for (const name of NAMES) {
    it(`${name}: one decision per element, as expected`, () => {
      const { input, expect: want } = loadPlanFixture(DIR, name);
      const plan = buildMigrationPlan(input);
      const got = plan.items.map((i) => ({ id: i.id, decision: i.decision, fixes: i.fixes })).sort((a, b) => a.id.localeCompare(b.id));
      const wanted = [...want.items].sort((a, b) => a.id.localeCompare(b.id));
      expect(got.map((g) => `${g.id}=${g.decision}`)).toEqual(wanted.map((w) => `${w.id}=${w.decision}`));
      for (const w of wanted) {
        if (w.fixes) expect(got.find((g) => g.id === w.id)!.fixes, `${w.id} fixes`).toEqual(w.fixes);
      }
      expect(plan.go).toBe(want.go);
      // Sentences for people: one reason each, a fix for every refusal, ids unique.
      expect(new Set(plan.items.map((i) => i.id)).size).toBe(plan.items.length);
      for (const i of plan.items) {
        expect(i.reason, i.id).toMatch(/^\S.*[.)]$/);
        if (i.decision === 'refuse') expect(i.fix, `${i.id} has a fix`).toMatch(/\S/);
      }
      // The full plan, reasons included, is reviewed as a golden file.
      expectGolden(`plans/${name}`, plan);
    });
  }
});

describe('facts a plan needs', () => {
  it('asks the destination about disks, NVRAM, firmware, kernels and media, and hashes only what must be identical', () => {
    const { input } = loadPlanFixture(DIR, NAMES.find((n) => /kitchen/.test(n)) ?? NAMES[0]!);
    const want = factsWanted(input.devices, 'offline', '00000000-0000-4000-8000-000000000000');
    for (const d of input.devices.disks.filter((x) => x.device === 'disk' && x.type === 'file' && x.path)) {
      expect(want.destPaths).toContain(d.path);
      expect(want.images).toContain(d.path);
      expect(want.identity).not.toContain(d.path);
    }
    for (const d of input.devices.disks.filter((x) => (x.device === 'cdrom' || x.device === 'floppy') && x.type === 'file' && x.path)) expect(want.identity).toContain(d.path);
  });

  it('lists swtpm state only for offline moves, and never for a UUID that is not one', () => {
    const devices = { ...loadPlanFixture(DIR, NAMES[0]!).input.devices, tpms: [{ model: 'tpm-crb', backend: 'emulator', path: null }] };
    expect(factsWanted(devices, 'offline', 'A0F6C7A2-1111-4222-8333-444455556666').tpmStateDir).toBe('/var/lib/libvirt/swtpm/a0f6c7a2-1111-4222-8333-444455556666');
    expect(factsWanted(devices, 'live', 'a0f6c7a2-1111-4222-8333-444455556666').tpmStateDir).toBeNull();
    expect(factsWanted(devices, 'offline', '../../etc').tpmStateDir).toBeNull();
  });
});
