import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const LAB_SCRIPT = fileURLToPath(new URL('../../scripts/lab.sh', import.meta.url));

export interface LabNode {
  name: string;
  addr: string;
  url: string;
}

export const labNodes = (n: number): LabNode[] =>
  Array.from({ length: n }, (_, i) => {
    const name = `lab-${String.fromCharCode(97 + i)}`;
    const addr = `10.77.0.${11 + i}`;
    return { name, addr, url: `http://${addr}:8080` };
  });

export function lab(...args: string[]): string {
  return execFileSync('bash', [LAB_SCRIPT, ...args], { encoding: 'utf8', timeout: 300_000, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs argv inside a lab node's namespaces; returns stdout. */
export function inNode(node: string, ...cmd: string[]): string {
  return lab('exec', node, ...cmd);
}

export function tryInNode(node: string, ...cmd: string[]): { ok: boolean; out: string } {
  try {
    return { ok: true, out: inNode(node, ...cmd) };
  } catch (e) {
    return { ok: false, out: String((e as { stderr?: string }).stderr ?? e) };
  }
}

export async function http(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = { raw: text };
  }
  return { status: res.status, json };
}
