/**
 * Websocket close codes of the console (4000–4999 are free for applications). The
 * browser cannot read the HTTP status of a refused handshake, so refusals after the
 * ticket check end the socket with one of these codes and a one-sentence reason;
 * public/console.js shows the reason and asks the server where the VM is now.
 */
export const CONSOLE_CLOSE = {
  TICKET_UNKNOWN: 4001,
  TICKET_USED: 4002,
  TICKET_EXPIRED: 4003,
  TICKET_WRONG_VM: 4004,
  VM_GONE: 4010,
  VM_NOT_RUNNING: 4011,
  NO_VNC: 4012,
  NODE_UNREACHABLE: 4013,
  VNC_UNREACHABLE: 4014,
  VNC_CLOSED: 4020,
  TOO_MANY: 4029,
  SERVER_STOPPING: 4030,
} as const;

export type ConsoleCloseCode = (typeof CONSOLE_CLOSE)[keyof typeof CONSOLE_CLOSE];

export const TICKET_REFUSAL_TEXT = {
  unknown: [CONSOLE_CLOSE.TICKET_UNKNOWN, 'This console ticket is not valid; reconnect to get a new one.'],
  used: [CONSOLE_CLOSE.TICKET_USED, 'This console ticket was already used; reconnect to get a new one.'],
  expired: [CONSOLE_CLOSE.TICKET_EXPIRED, 'This console ticket expired before it was used; reconnect to get a new one.'],
  'wrong-vm': [CONSOLE_CLOSE.TICKET_WRONG_VM, 'This console ticket was issued for another VM.'],
} as const satisfies Record<string, readonly [ConsoleCloseCode, string]>;

/** A websocket close reason may carry at most 123 bytes of UTF-8. */
export function closeReason(text: string): string {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= 123) return text;
  // A cut inside a multi-byte character leaves U+FFFD; drop it. "…" is 3 bytes: 120 + 3 = 123.
  return `${buf.subarray(0, 120).toString('utf8').replace(/\uFFFD+$/, '')}…`;
}

/** Where to connect for a VNC server that listens on `listen`: wildcard and names mean this host's loopback. */
export function vncConnectHost(listen: string | null, isIp: (s: string) => boolean): string {
  if (!listen || listen === '0.0.0.0' || listen === '::' || listen === 'localhost' || !isIp(listen)) return '127.0.0.1';
  return listen;
}

export function isLoopbackOnly(listen: string | null): boolean {
  return !listen || listen === 'localhost' || listen === '::1' || listen.startsWith('127.');
}
