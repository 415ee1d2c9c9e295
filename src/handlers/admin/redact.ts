import { describeFunction, isFunction } from '../inline.ts';

// The running config as GET /config shows it: every value that is a secret replaced by
// "[redacted]". Secrets are recognised by their field names (passwords, passphrases, tokens,
// secrets, HMAC and EAB keys) and by the password part of URLs (redis://user:pass@host). File
// paths (a TLS key's path) are not secrets and stay.

const SECRET = /^(password|passphrase|token|secret|hmackey|hmac|eabhmackey|apikey|api_key)$/i;

export const REDACTED = '[redacted]';

function redactUrl(value: string): string {
  // scheme://user:password@host -> scheme://user:[redacted]@host
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):[^@/]*@/i, `$1:${REDACTED}@`);
}

export function redact(value: unknown): unknown {
  if (typeof value === 'string') return redactUrl(value);
  // Inline handlers and middleware of a config built in code: shown by name, as JSON cannot hold them.
  if (isFunction(value)) return describeFunction(value);
  if (Array.isArray(value)) return value.map(redact);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRET.test(k) && v !== undefined && v !== null ? REDACTED : redact(v);
    return out;
  }
  return value;
}
