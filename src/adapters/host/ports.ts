import { createServer } from 'node:net';

/** A port is free when nothing listens on it: try to bind it on all addresses, then let go. */
export function isTcpPortFree(port: number, host = '0.0.0.0'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}
