import { open } from 'node:fs/promises';
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { TlsConfigError, type TlsField } from './errors.ts';
import { certificateNames } from './names.ts';

// A certificate and its key from PEM files, checked up front so that a bad pair is a clear error
// at start (or a kept old pair at reload), never a handshake failure in front of a client.

/** Certificate and key files are small; anything larger is not one (and is not read whole). */
export const MAX_PEM_FILE_BYTES = 1024 * 1024;

export interface KeyPairFiles {
  /** PEM file: the certificate first, then its intermediates, each issued by the next. */
  cert: string;
  /** PEM file with the private key (PKCS#8, PKCS#1 or SEC1), maybe encrypted. */
  key: string;
  /** For an encrypted key. */
  passphrase?: string;
}

export interface KeyPairCheckOptions {
  /** The clock validity is checked against (ms since the epoch); tests move it. */
  now?: () => number;
  /**
   * Refuse a key file readable by group or others, like ssh does with identity files. On by
   * default; a library user with keys in a store of their own (e.g. an in-memory pair) passes false.
   */
  checkKeyPermissions?: boolean;
}

/** A checked certificate chain and key, ready for tls.createSecureContext. */
export interface KeyPair {
  certFile?: string;
  keyFile?: string;
  /** The chain as PEM (leaf first). */
  certPem: string;
  /** The key as PEM, as read (still encrypted when it was; `passphrase` goes with it). */
  keyPem: string;
  passphrase?: string;
  leaf: X509Certificate;
  chain: X509Certificate[];
  /** DNS names and IP addresses the leaf serves, normalised (see names.ts). */
  names: string[];
  notBefore: Date;
  notAfter: Date;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const KEY_BLOCK = /-----BEGIN ((?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY)-----[\s\S]+?-----END \1-----/;

/** Reads a PEM file with the errors of this layer; `requirePrivate` checks its mode first. */
export async function readPemFile(file: string, field: TlsField, requirePrivate: boolean): Promise<string> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    throw fileError(err, file, field);
  }
  try {
    // fstat on the open file, not stat on the path: the mode checked is the one of what is read.
    const st = await handle.stat();
    if (!st.isFile()) throw new TlsConfigError('SWITCHYARD_TLS_FILE_UNREADABLE', 'not a regular file', file, field);
    if (requirePrivate && process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      throw new TlsConfigError(
        'SWITCHYARD_TLS_KEY_PERMISSIONS',
        `private key is readable by group or others (mode ${mode}); chmod 600 it`,
        file,
        field,
      );
    }
    if (st.size > MAX_PEM_FILE_BYTES) {
      throw new TlsConfigError('SWITCHYARD_TLS_NOT_PEM', `larger than ${MAX_PEM_FILE_BYTES} bytes; not a PEM certificate or key file`, file, field);
    }
    const buf = Buffer.alloc(Math.min(st.size, MAX_PEM_FILE_BYTES) + 1);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } catch (err) {
    if (err instanceof TlsConfigError) throw err;
    throw fileError(err, file, field);
  } finally {
    await handle.close();
  }
}

function fileError(err: unknown, file: string, field: TlsField): TlsConfigError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new TlsConfigError('SWITCHYARD_TLS_FILE_MISSING', 'no such file', file, field, { cause: err });
  const why = code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'EISDIR' ? 'is a folder' : (err as Error).message;
  return new TlsConfigError('SWITCHYARD_TLS_FILE_UNREADABLE', `cannot read: ${why}`, file, field, { cause: err });
}

/** Loads and checks a pair from files. Throws TlsConfigError. */
export async function loadKeyPair(files: KeyPairFiles, options: KeyPairCheckOptions = {}): Promise<KeyPair> {
  const certPem = await readPemFile(files.cert, 'cert', false);
  const keyPem = await readPemFile(files.key, 'key', options.checkKeyPermissions ?? true);
  return parseKeyPair(certPem, keyPem, { ...options, passphrase: files.passphrase, certFile: files.cert, keyFile: files.key });
}

/** Checks a pair given as PEM text (the files named only for the errors). Throws TlsConfigError. */
export function parseKeyPair(
  certPem: string,
  keyPem: string,
  options: KeyPairCheckOptions & { passphrase?: string; certFile?: string; keyFile?: string } = {},
): KeyPair {
  const { certFile, keyFile, passphrase } = options;
  const blocks = certPem.match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) {
    throw new TlsConfigError('SWITCHYARD_TLS_NOT_PEM', 'no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)', certFile, 'cert');
  }
  const chain = blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new TlsConfigError('SWITCHYARD_TLS_NOT_PEM', `certificate ${i + 1} in it does not parse (${(err as Error).message})`, certFile, 'cert', { cause: err });
    }
  });
  const leaf = chain[0];

  const keyBlock = KEY_BLOCK.exec(keyPem);
  if (!keyBlock) {
    throw new TlsConfigError('SWITCHYARD_TLS_NOT_PEM', 'no PEM private key in it (expected -----BEGIN PRIVATE KEY----- or an RSA/EC/ENCRYPTED one)', keyFile, 'key');
  }
  const encrypted = keyBlock[1] === 'ENCRYPTED PRIVATE KEY' || /Proc-Type:\s*4,ENCRYPTED/.test(keyBlock[0]);
  if (encrypted && !passphrase) {
    throw new TlsConfigError('SWITCHYARD_TLS_BAD_PASSPHRASE', 'private key is encrypted and no passphrase was given', keyFile, 'passphrase');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: keyBlock[0], format: 'pem', passphrase });
  } catch (err) {
    if (encrypted) throw new TlsConfigError('SWITCHYARD_TLS_BAD_PASSPHRASE', 'cannot decrypt the private key: wrong passphrase', keyFile, 'passphrase', { cause: err });
    throw new TlsConfigError('SWITCHYARD_TLS_NOT_PEM', `private key does not parse (${(err as Error).message})`, keyFile, 'key', { cause: err });
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new TlsConfigError(
      'SWITCHYARD_TLS_KEY_MISMATCH',
      `private key does not match the certificate in ${certFile ?? 'the certificate file'} (${leaf.subject.replace(/\n/g, ', ')})`,
      keyFile,
      'key',
    );
  }

  const now = options.now?.() ?? Date.now();
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (now > notAfter.getTime()) {
    throw new TlsConfigError('SWITCHYARD_TLS_CERT_EXPIRED', `certificate expired on ${notAfter.toISOString()}`, certFile, 'cert');
  }
  if (now < notBefore.getTime()) {
    throw new TlsConfigError(
      'SWITCHYARD_TLS_CERT_NOT_YET_VALID',
      `certificate is not valid before ${notBefore.toISOString()} (is this machine's clock right?)`,
      certFile,
      'cert',
    );
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    // A chain out of order works in some clients and fails in others; refuse it here, once.
    if (!chain[i].checkIssued(chain[i + 1]) || !chain[i].verify(chain[i + 1].publicKey)) {
      throw new TlsConfigError(
        'SWITCHYARD_TLS_CHAIN_ORDER',
        `certificate ${i + 2} in it did not issue certificate ${i + 1}; put the server certificate first, then each issuer in turn`,
        certFile,
        'cert',
      );
    }
  }

  return {
    certFile,
    keyFile,
    certPem: blocks.join('\n') + '\n',
    keyPem: keyBlock[0] + '\n',
    passphrase: encrypted ? passphrase : undefined,
    leaf,
    chain,
    names: certificateNames(leaf),
    notBefore,
    notAfter,
  };
}
