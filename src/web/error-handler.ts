import type { ErrorRequestHandler } from 'express';
import { randomUUID } from 'node:crypto';
import { AppError, describeError, isAppError } from '../errors.js';
import type { Logger } from '../log.js';

/** Body-parser errors carry a status and type; they are the client's fault, not ours. */
function fromParserError(err: unknown): AppError | null {
  const e = err as { type?: string; status?: number };
  if (e?.type === 'entity.too.large') return new AppError('PAYLOAD_TOO_LARGE', 'The request body is too large.');
  if (e?.type === 'entity.parse.failed') return new AppError('BAD_INPUT', 'The request body is not valid JSON.', { detail: describeError(err) });
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) return new AppError('BAD_INPUT', 'The request could not be read.', { detail: describeError(err) });
  return null;
}

/** Expected failures become their AppError; anything else is a bug with a reference id. */
export function toAppError(err: unknown, log: Logger): AppError {
  if (isAppError(err)) return err;
  const parsed = fromParserError(err);
  if (parsed) return parsed;
  const ref = randomUUID().slice(0, 8);
  log.error('unhandled error', { ref, error: describeError(err), stack: (err as Error)?.stack });
  return new AppError('INTERNAL', `Unexpected error in kvm-ferry (reference ${ref}); see the manager's log.`);
}

export function apiErrorHandler(log: Logger): ErrorRequestHandler {
  return (err, _req, res, _next) => {
    const e = toAppError(err, log);
    const body: { code: string; message: string; detail?: string; field?: string } = { code: e.code, message: e.message };
    if (e.detail) body.detail = e.detail;
    if (e.field) body.field = e.field;
    res.status(e.httpStatus).json({ error: body });
  };
}
