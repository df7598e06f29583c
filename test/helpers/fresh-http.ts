import { request } from 'node:http';

/**
 * One HTTP request on its own connection (no keep-alive pool). Lab tests pause for
 * tens of seconds between requests on a loaded machine; a pooled socket the server
 * closes just as it is reused fails with "other side closed". Same result shape as
 * lab.ts http().
 */
export function freshHttp(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any; text: string; location?: string }> {
  const data = body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, base), {
      method,
      agent: false,
      timeout: 300_000,
      headers: { ...(data === null ? {} : { 'content-type': typeof body === 'string' ? 'application/x-www-form-urlencoded' : 'application/json', 'content-length': Buffer.byteLength(data) }), ...headers },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: any = null;
        try {
          json = JSON.parse(text);
        } catch {
          json = { raw: text };
        }
        resolve({ status: res.statusCode ?? 0, json, text, ...(res.headers.location ? { location: res.headers.location } : {}) });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    if (data !== null) req.write(data);
    req.end();
  });
}
