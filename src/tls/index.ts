// The certificate layer: PEM pairs from files, the per-listener store (SNI, reload, session
// tickets) and the local development CA. The listeners build their TLS options from here; ACME
// lives beside it in ./acme.

export { TlsConfigError, isTlsConfigError, type TlsErrorCode, type TlsField } from './errors.ts';
export { loadKeyPair, parseKeyPair, readPemFile, MAX_PEM_FILE_BYTES, type KeyPair, type KeyPairFiles, type KeyPairCheckOptions } from './pem.ts';
export { normalizeName, nameMatches, wildcardOf, certificateNames } from './names.ts';
export {
  contextSecurityOptions,
  newTicketKeys,
  DEFAULT_MIN_VERSION,
  DEFAULT_SESSION_TIMEOUT_MS,
  DEFAULT_TICKET_KEY_ROTATION_MS,
  type TlsSecurityOptions,
  type TlsVersion,
} from './security.ts';
export {
  CertificateStore,
  describeCertificate,
  DEFAULT_RELOAD_DEBOUNCE_MS,
  type CertificateStoreOptions,
  type CertificateSource,
  type CertificateInfo,
  type InternalIssuerOptions,
  type ReloadResult,
  type TlsEvent,
} from './store.ts';
export {
  InternalCA,
  leafNames,
  leafRenewalTime,
  renewalTime,
  DEFAULT_LEAF_LIFETIME_MS,
  INTERMEDIATE_LIFETIME_MS,
  ROOT_LIFETIME_MS,
  LOCAL_NAMES,
  type InternalCaOptions,
} from './ca.ts';
export { defaultDataDir } from './data-dir.ts';
export {
  clientCertificate,
  describeClientCertificate,
  loadClientCa,
  normalizeFingerprint,
  parseSubjectAltName,
  type ClientAuthMode,
  type ClientAuthOptions,
  type ClientCertificate,
} from './client-cert.ts';
export { readClientHello, MAX_CLIENT_HELLO, type ClientHelloInfo } from './client-hello.ts';
export {
  tlsConfigSchema,
  certificateFilesSchema,
  clientAuthSchema,
  createCertificateStore,
  tlsErrorPath,
  type TlsConfig,
  type TlsConfigInput,
  type CreateStoreOptions,
} from './config.ts';
