import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StateConfig } from '../../state/index.ts';
import type { Clock } from './clock.ts';
import type { AcmeConfig } from './config.ts';
import { FileAcmeStorage } from './file-storage.ts';
import type { Http01Challenges } from './http01.ts';
import { AcmeIssuer } from './issuer.ts';
import { CertificateManager } from './manager.ts';
import type { AcmeStorage } from './storage.ts';
import type { TlsAlpnChallenges } from './tls-alpn01.ts';

// Automatic certificates over ACME (RFC 8555): the public face of src/tls/acme.

export { acmeConfigSchema, ACME_DIRECTORIES, CHALLENGE_TYPES, type AcmeConfig, type AcmeConfigInput, type ChallengeType } from './config.ts';
export { AcmeIssuer, type AcmeIssuerOptions, type CertificateSource } from './issuer.ts';
export { CertificateManager, type AcmeEvents, type CertificateEvent, type CertificateManagerOptions } from './manager.ts';
export { Http01Challenges, answerHttp01, http01Token, HTTP01_PREFIX, type Http01Responder } from './http01.ts';
export { TlsAlpnChallenges, answerTlsAlpn01, peekTlsAlpn01, tlsAlpn01Context, ACME_TLS_ALPN, type TlsAlpnResponder } from './tls-alpn01.ts';
export { readClientHello, type ClientHelloInfo } from '../client-hello.ts';
export { FileAcmeStorage } from './file-storage.ts';
export type { AcmeStorage, Release } from './storage.ts';
export type { IssuedCertificate } from './certificate.ts';
export { systemClock, type Clock } from './clock.ts';
export { backoffDelay, type BackoffPolicy } from './backoff.ts';

/**
 * The storage for ACME state: Redis when the daemons share state there (so that they share the
 * account and certificates and order each once), else the folder `<dataDir>/acme`.
 */
export async function openAcmeStorage(state: StateConfig, dataDir: string): Promise<AcmeStorage> {
  if (state.backend === 'redis') {
    // Loaded only when asked for, so that a daemon without Redis never loads ioredis.
    const { RedisAcmeStorage } = await import('./redis-storage.ts');
    return RedisAcmeStorage.connect(state);
  }
  return new FileAcmeStorage(join(dataDir, 'acme'));
}

export interface Acme {
  issuer: AcmeIssuer;
  manager: CertificateManager;
  /** For GET /.well-known/acme-challenge/<token> on the http listeners. */
  http01: Http01Challenges;
  /** For TLS connections offering ALPN acme-tls/1. */
  tlsAlpn01: TlsAlpnChallenges;
}

/**
 * The issuer and the renewal manager of one `tls: { issuer: acme }` config. Add the names with
 * manager.add(), subscribe to manager.on('issued' | 'renewed' | 'loaded' | 'failed'), then
 * manager.start(). Responders may be shared by several configs (one per daemon is enough).
 */
export async function createAcme(
  config: AcmeConfig,
  options: { storage: AcmeStorage; http01?: Http01Challenges; tlsAlpn01?: TlsAlpnChallenges; clock?: Clock; poll?: { minMs?: number; maxMs?: number; attempts?: number } },
): Promise<Acme> {
  let directoryCa: Buffer | undefined;
  if (config.directoryCa !== undefined) {
    try {
      directoryCa = await readFile(config.directoryCa);
    } catch (err) {
      throw new Error(`tls.directoryCa: cannot read ${config.directoryCa}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const issuer = new AcmeIssuer({
    directory: config.directory,
    email: config.email,
    directoryCa,
    termsOfServiceAgreed: config.termsOfServiceAgreed,
    externalAccountBinding: config.externalAccountBinding,
    challenges: config.challenges,
    storage: options.storage,
    http01: options.http01,
    tlsAlpn01: options.tlsAlpn01,
    poll: options.poll,
  });
  const manager = new CertificateManager({
    source: issuer,
    storage: options.storage,
    renewAt: config.renewAt,
    retry: { minMs: config.retry.min, maxMs: config.retry.max },
    lockTtlMs: config.lockTtl,
    clock: options.clock,
  });
  if (config.names) manager.add(config.names);
  return { issuer, manager, http01: issuer.http01, tlsAlpn01: issuer.tlsAlpn01 };
}
