import { InternalCA } from '../tls/ca.ts';

/**
 * `switchyard ca`: where the local CA's root certificate is and how to make clients trust it;
 * makes the CA first if there is none. `--pem` prints only the root certificate (for pipes).
 */
export async function caCommand(options: { dataDir?: string; pem?: boolean }): Promise<void> {
  const ca = await InternalCA.open({ dataDir: options.dataDir });
  if (options.pem) {
    process.stdout.write(ca.rootCertPem);
    return;
  }
  const root = ca.rootCertFile;
  const q = shellQuote(root);
  const subject = ca.root.cert.subject.replace(/\n/g, ', ');
  process.stdout.write(
    [
      `${ca.created ? 'Created the local CA' : 'Local CA'} in ${ca.dir}`,
      `  root certificate: ${root}`,
      `  subject:          ${subject}`,
      `  valid until:      ${new Date(ca.root.cert.validTo).toISOString()}`,
      `  SHA-256:          ${ca.root.cert.fingerprint256}`,
      '',
      'Listeners with `tls: { issuer: internal }` serve certificates signed by it. Trust the root',
      'once where you test (only on machines you develop on; its key is in that folder):',
      '',
      '  curl:',
      `    curl --cacert ${q} https://localhost:8443/`,
      '  Node.js (also undici/fetch):',
      `    NODE_EXTRA_CA_CERTS=${q} node app.js`,
      '  Debian/Ubuntu system store (curl, wget, most programs):',
      `    sudo cp ${q} /usr/local/share/ca-certificates/switchyard-local.crt && sudo update-ca-certificates`,
      '  Chromium/Chrome on Linux (NSS; libnss3-tools has certutil):',
      `    certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n "Switchyard local CA" -i ${q}`,
      '  Firefox uses its own store: Settings > Privacy & Security > Certificates > Import.',
      '',
      'Print the certificate itself with: switchyard ca --pem',
      '',
    ].join('\n'),
  );
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
