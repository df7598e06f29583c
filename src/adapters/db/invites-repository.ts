import { createHash, timingSafeEqual } from 'node:crypto';
import type { Db } from './database.js';
import type { InviteRecord } from '../../domain/join/decisions.js';

export const hashSecret = (secret: string) => createHash('sha256').update(`kvm-ferry-invite:${secret}`).digest('hex');

/** Invites in SQLite: the secret itself is never stored, only its hash. */
export class InvitesRepository {
  constructor(private readonly db: Db) {}

  add(id: string, secret: string, createdAtMs: number, expiresAtMs: number): void {
    this.db.prepare('INSERT INTO invites (id, secret_hash, created_at_ms, expires_at_ms) VALUES (?, ?, ?, ?)').run(id, hashSecret(secret), createdAtMs, expiresAtMs);
  }

  get(id: string): InviteRecord | null {
    const r = this.db.prepare('SELECT id, secret_hash, expires_at_ms, used_at_ms FROM invites WHERE id = ?').get(id) as
      | { id: string; secret_hash: string; expires_at_ms: number; used_at_ms: number | null }
      | undefined;
    return r ? { id: r.id, secretHash: r.secret_hash, expiresAtMs: r.expires_at_ms, usedAtMs: r.used_at_ms } : null;
  }

  /** Constant-time: the hash of the offered secret against the stored one. */
  secretMatches(invite: InviteRecord | null, secret: unknown): boolean {
    if (!invite || typeof secret !== 'string') return false;
    return timingSafeEqual(Buffer.from(hashSecret(secret)), Buffer.from(invite.secretHash));
  }

  /** Marks it used, only if nobody did first (two joins racing with one token: one wins). */
  claim(id: string, by: string, now: number): boolean {
    return this.db.prepare('UPDATE invites SET used_at_ms = ?, used_by = ? WHERE id = ? AND used_at_ms IS NULL AND expires_at_ms > ?').run(now, by, id, now).changes === 1;
  }

  /** Gives an invite back when the join failed after the claim (nothing else was written). */
  unclaim(id: string): void {
    this.db.prepare('UPDATE invites SET used_at_ms = NULL, used_by = NULL WHERE id = ?').run(id);
  }

  active(now: number): { id: string; expiresAtMs: number }[] {
    return (this.db.prepare('SELECT id, expires_at_ms FROM invites WHERE used_at_ms IS NULL AND expires_at_ms > ? ORDER BY created_at_ms').all(now) as { id: string; expires_at_ms: number }[]).map((r) => ({ id: r.id, expiresAtMs: r.expires_at_ms }));
  }
}
