import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restoreLabInstanceEnv } from '../helpers/lab-instance.js';
import { requireRealLibvirt, waitFor } from '../helpers/lab-prereqs.js';
import { freshHttp } from '../helpers/fresh-http.js';
import { readFileSync } from 'node:fs';
import { http, lab, LAB_STATE, labNodes } from '../helpers/lab.js';

/**
 * The inventory cache on the lab: two nodes with their real managers, libvirtds and sshds.
 * lab-a's page is drawn from its cache, so a peer whose manager is killed, or whose libvirtd
 * is SIGSTOPped (it still accepts, nothing answers), shows inactive with its reason and its
 * age while every page still renders at once.
 */
const [A, B] = labNodes(2) as [ReturnType<typeof labNodes>[number], ReturnType<typeof labNodes>[number]];

interface View { name: string; state: string; reason: string | null; ageSec: number | null }
const viewOf = async (from: typeof A, node: string): Promise<View | undefined> =>
  ((await http(from.url, 'GET', '/api/inventory')).json as View[]).find((v) => v.name === node);
const section = (html: string, node: string) => {
  const start = html.indexOf(`data-node="${node}"`);
  return start < 0 ? '' : html.slice(start, html.indexOf('</section>', start));
};
async function timedPage(from: typeof A): Promise<{ ms: number; text: string }> {
  const t0 = Date.now();
  const r = await freshHttp(from.url, 'GET', '/');
  expect(r.status).toBe(200);
  return { ms: Date.now() - t0, text: r.text };
}
/** The last lines of a node's manager log: what a timed-out wait prints, so a CI failure says why. */
const managerLogTail = (node: string) => {
  try {
    return readFileSync(`${LAB_STATE}/${node}/manager.log`, 'utf8').split('\n').slice(-15).join('\n');
  } catch (e) {
    return String(e);
  }
};
async function waitState(from: typeof A, node: string, state: string, ms: number): Promise<View> {
  let last: View | string | undefined;
  await waitFor(() => `${from.name} to see ${node} ${state} (last: ${JSON.stringify(last)}); ${from.name}'s manager log:\n${managerLogTail(from.name)}`, ms, async () => {
    last = await viewOf(from, node).catch((e: Error) => `no answer: ${e.message}`);
    return typeof last === 'object' && last.state === state;
  });
  return last as View;
}

beforeAll(async () => {
  requireRealLibvirt();
  lab('down');
  lab('up', '2', '--with-manager');
  await waitFor('both managers to answer', 60_000, async () => {
    const up = await Promise.all([A, B].map((n) => http(n.url, 'GET', '/healthz').then((r) => r.status === 200, () => false)));
    return up.every(Boolean);
  });
  await waitState(A, B.name, 'active', 60_000);
}, 300_000);

afterAll(() => {
  try {
    lab('daemon', B.name, 'libvirtd', 'resume');
  } catch {
    /* not paused */
  }
  lab('down');
  restoreLabInstanceEnv();
});

describe('the page from the inventory cache on the lab', () => {
  it("shows a peer whose manager was killed as inactive with the reason and its age, and renders at once", async () => {
    lab('manager', B.name, 'kill');
    const v = await waitState(A, B.name, 'inactive', 60_000);
    expect(v.reason).toMatch(/^manager unreachable: /);
    const page = await timedPage(A);
    expect(page.ms, 'GET / on lab-a with lab-b down').toBeLessThan(2_000);
    const b = section(page.text, B.name);
    expect(b).toMatch(/data-status="down"/);
    expect(b).toContain('manager unreachable');
    expect(b).toMatch(/as of \d+ (s|min) ago/);
    expect(section(page.text, A.name)).toMatch(/data-status="up"/);
    lab('manager', B.name, 'start');
    await waitState(A, B.name, 'active', 90_000);
  }, 200_000);

  it('shows "libvirt does not answer" for a SIGSTOPped libvirtd, every page still renders at once, and recovers on resume', async () => {
    lab('daemon', B.name, 'libvirtd', 'pause');
    try {
      // lab-b's own manager notices first (its libvirt timeout); lab-a hears it from lab-b.
      await waitFor('lab-b to see its own libvirt not answering', 60_000, async () => (await viewOf(B, B.name).catch(() => undefined))?.state === 'inactive');
      const own = await viewOf(B, B.name);
      expect(own?.reason).toMatch(/^libvirt does not answer/);
      const v = await waitState(A, B.name, 'inactive', 60_000);
      expect(v.reason).toMatch(/libvirt does not answer/);
      for (const node of [A, B]) {
        const page = await timedPage(node);
        expect(page.ms, `GET / on ${node.name} while lab-b's libvirtd is stopped`).toBeLessThan(2_000);
        expect(section(page.text, B.name)).toContain('libvirt does not answer');
      }
    } finally {
      lab('daemon', B.name, 'libvirtd', 'resume');
    }
    await waitState(B, B.name, 'active', 90_000);
    await waitState(A, B.name, 'active', 90_000);
    expect(section((await timedPage(A)).text, B.name)).toMatch(/data-status="up"/);
  }, 240_000);
});
