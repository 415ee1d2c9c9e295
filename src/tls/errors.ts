// Errors of the certificate layer. `code` is stable (callers and tests switch on it, as on
// undici's errors); `file` is the offending file and `field` which entry of a certificate pair it
// came from, so the config layer can name the path (`listeners[0].tls.certificates[1].key`).

export type TlsErrorCode =
  /** The file does not exist. */
  | 'SWITCHYARD_TLS_FILE_MISSING'
  /** The file exists but cannot be read (permissions, a folder, an I/O error). */
  | 'SWITCHYARD_TLS_FILE_UNREADABLE'
  /** The file holds no PEM block of the expected kind, or a block that does not parse. */
  | 'SWITCHYARD_TLS_NOT_PEM'
  /** The private key file is readable by group or others (mode & 0o077). */
  | 'SWITCHYARD_TLS_KEY_PERMISSIONS'
  /** The key is encrypted and no passphrase was given, or the passphrase is wrong. */
  | 'SWITCHYARD_TLS_BAD_PASSPHRASE'
  /** The private key is not the one of the (first) certificate. */
  | 'SWITCHYARD_TLS_KEY_MISMATCH'
  /** The certificate's notAfter has passed. */
  | 'SWITCHYARD_TLS_CERT_EXPIRED'
  /** The certificate's notBefore is still to come (often a wrong clock). */
  | 'SWITCHYARD_TLS_CERT_NOT_YET_VALID'
  /** The certificates in a chain file are not each issued by the next one. */
  | 'SWITCHYARD_TLS_CHAIN_ORDER'
  /** A certificate store was asked for without any certificate or issuer. */
  | 'SWITCHYARD_TLS_NO_CERTIFICATE'
  /** The local CA's folder or files cannot be used (see the message). */
  | 'SWITCHYARD_TLS_CA';

/** `ca`: a file of `clientAuth.ca` (the CAs client certificates are checked against). */
export type TlsField = 'cert' | 'key' | 'passphrase' | 'dataDir' | 'ca';

export class TlsConfigError extends Error {
  /** Which entry of a store's `certificates` list it was about (0-based), when it was one. */
  entry?: number;
  constructor(
    readonly code: TlsErrorCode,
    /** Why, in a few words, without the file name: `key is readable by group or others (mode 0644); chmod 600 it`. */
    readonly reason: string,
    /** The file at fault, as given (absolute when resolved by the caller). */
    readonly file?: string,
    /** Which field of the certificate entry holds `file`. */
    readonly field?: TlsField,
    options?: { cause?: unknown },
  ) {
    super(file ? `${file}: ${reason}` : reason, options);
    this.name = 'TlsConfigError';
  }
}

export function isTlsConfigError(err: unknown): err is TlsConfigError {
  return err instanceof TlsConfigError;
}
