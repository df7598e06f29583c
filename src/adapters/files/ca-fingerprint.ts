import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** SHA256:<base64> of the cluster's migration CA certificate in migrationTlsDir, or "" when there is none (yet). */
export function migrationCaFingerprint(tlsDir: string): string {
  let pem: string;
  try {
    pem = readFileSync(join(tlsDir, 'ca-cert.pem'), 'utf8');
  } catch {
    return '';
  }
  try {
    return `SHA256:${Buffer.from(new X509Certificate(pem).fingerprint256.replace(/:/g, ''), 'hex').toString('base64')}`;
  } catch {
    return '';
  }
}
