// @peculiar/x509 with what it needs before it is first used: a Reflect metadata polyfill for its
// DI container and node's WebCrypto as its provider. Imported lazily (by ca.ts only), so servers
// with certificates from files never load it nor patch the global Reflect.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };
