/**
 * Every expected failure becomes an AppError once, at the boundary where it is
 * understood. `message` is the one sentence a non-expert admin reads; `detail`
 * keeps the raw tool text for whoever debugs it.
 */
export const ERROR_CATALOGUE = {
  BAD_INPUT: 400,
  CSRF_REJECTED: 403,
  NODE_NOT_FOUND: 404,
  VM_NOT_FOUND: 404,
  JOB_NOT_FOUND: 404,
  NOT_FOUND: 404,
  VM_BUSY: 409,
  VM_STATE_CONFLICT: 409,
  NAME_TAKEN: 409,
  NODE_IN_MAINTENANCE: 409,
  VPN_STATE_CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  HOST_REFUSED: 421,
  UNSUPPORTED_MEDIA_TYPE: 415,
  COMMAND_FAILED: 502,
  VPN_FAILED: 502,
  LIBVIRT_FAILED: 502,
  LIBVIRT_UNREACHABLE: 503,
  NODE_UNREACHABLE: 503,
  TOO_MANY_CLIENTS: 503,
  INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly httpStatus: number;
  readonly detail: string | undefined;
  /** Which input field was bad, so forms can point at it. */
  readonly field: string | undefined;

  constructor(code: ErrorCode, message: string, opts: { detail?: string; cause?: unknown; field?: string } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'AppError';
    this.code = code;
    this.httpStatus = ERROR_CATALOGUE[code];
    this.detail = opts.detail;
    this.field = opts.field;
  }
}

export function badInput(field: string, message: string): AppError {
  return new AppError('BAD_INPUT', message, { field });
}

export function isAppError(e: unknown): e is AppError {
  return e instanceof AppError;
}

/** Raw text of any thrown value, for `detail`. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
