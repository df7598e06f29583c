import { AppError, ERROR_CATALOGUE, type ErrorCode } from '../../errors.js';
import type { Job } from '../../domain/job.js';
import type { Vm } from '../../domain/vm.js';
import type { PeerManagerClient } from '../../adapters/peer-api/peer-manager-client.js';
import type { NodeStatus } from '../local-node.js';

const STATUS_TIMEOUT_MS = 4_000;

/**
 * A peer node as its own kvm-ferry sees it: its VMs, jobs and actions come from its
 * manager's JSON API (through SSH), so every rule and every job lives on the node that
 * owns the VM, whichever page the user clicked on.
 */
export class RemoteNode {
  constructor(readonly name: string, private readonly api: PeerManagerClient, private readonly localName: string, private readonly url?: string) {}

  async status(): Promise<NodeStatus> {
    const base: NodeStatus = { name: this.name, local: false, status: 'down', ...(this.url ? { url: this.url } : {}) };
    try {
      const r = await this.api.json('GET', '/healthz', { via: this.localName, timeoutMs: STATUS_TIMEOUT_MS });
      const body = r.body as { ok?: boolean; reason?: string };
      if (r.status === 200 && body.ok) return { ...base, status: 'up' };
      return { ...base, reason: `libvirtd on ${this.name} does not answer${body.reason ? `: ${body.reason}` : ''}.` };
    } catch (e) {
      return { ...base, reason: e instanceof AppError ? e.message : String(e) };
    }
  }

  listVms(timeoutMs?: number): Promise<Vm[]> {
    return this.call<Vm[]>('GET', `/api/nodes/${enc(this.name)}/vms`, undefined, null, timeoutMs);
  }

  getJob(id: number): Promise<Job> {
    return this.call<Job>('GET', `/api/nodes/${enc(this.name)}/jobs/${id}`);
  }

  /** An action on one of its VMs (start, shutdown, migrate…); answers with the job it started there. */
  async vmAction(vm: string, verb: string, body: Record<string, unknown>, user: string | null): Promise<Job> {
    const r = await this.call<{ job: Job }>('POST', `/api/nodes/${enc(this.name)}/vms/${enc(vm)}/${verb}`, body, user);
    return r.job;
  }

  async deleteVm(vm: string, query: Record<string, string>, user: string | null): Promise<Job> {
    const qs = new URLSearchParams(query).toString();
    const r = await this.call<{ job: Job }>('DELETE', `/api/nodes/${enc(this.name)}/vms/${enc(vm)}${qs ? `?${qs}` : ''}`, undefined, user);
    return r.job;
  }

  migrateCheck(vm: string, body: Record<string, unknown>): Promise<unknown> {
    return this.call('POST', `/api/nodes/${enc(this.name)}/vms/${enc(vm)}/migrate/check`, body);
  }

  /** Its newest jobs for one VM, newest first. */
  recentJobs(vm: string, limit = 10): Promise<Job[]> {
    return this.call<Job[]>('GET', `/api/jobs?${new URLSearchParams({ vm, limit: String(limit) }).toString()}`);
  }

  async abortJob(id: number, user: string | null): Promise<Job> {
    return (await this.call<{ job: Job }>('POST', `/api/nodes/${enc(this.name)}/jobs/${id}/abort`, {}, user)).job;
  }

  async call<T>(method: string, path: string, body?: unknown, user: string | null = null, timeoutMs?: number): Promise<T> {
    const r = await this.api.json(method, path, { via: this.localName, user, ...(body === undefined ? {} : { body }), ...(timeoutMs ? { timeoutMs } : {}) });
    if (r.status >= 400) throw peerError(this.name, r.status, r.body);
    return r.body as T;
  }
}

/** The peer's own error, kept as it said it: it knows its VMs best. */
export function peerError(node: string, status: number, body: unknown): AppError {
  const e = (body as { error?: { code?: string; message?: string; detail?: string; field?: string } })?.error;
  const known = e?.code && e.code in ERROR_CATALOGUE ? (e.code as ErrorCode) : null;
  const code: ErrorCode = known ?? (status === 404 ? 'NOT_FOUND' : status === 409 ? 'VM_STATE_CONFLICT' : status < 500 ? 'BAD_INPUT' : 'NODE_UNREACHABLE');
  return new AppError(code, e?.message ?? `Node ${node} answered HTTP ${status}.`, {
    ...(e?.detail ? { detail: e.detail } : {}),
    ...(e?.field ? { field: e.field } : {}),
  });
}

const enc = encodeURIComponent;
