import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import type { ConfigInput } from './schema.ts';

// The embedded default: what `switchyard serve` runs without a config file. It shows each kind
// of listener once, on loopback only, and serves ./public when the current folder has one
// (the package's own demo files otherwise). gRPC: `switchyard connect
// grpc://127.0.0.1:8080/helloworld.Greeter/SayHello -d '{"name":"you"}'`.

/** The package's bundled demo folder. */
export const bundledPublicDir = fileURLToPath(new URL('../../public/', import.meta.url));

function publicRoot(cwd: string): string {
  const local = resolve(cwd, 'public');
  try {
    if (existsSync(local) && statSync(local).isDirectory()) return local;
  } catch {
    // unreadable ./public: fall back to the bundled demo files
  }
  return bundledPublicDir;
}

export function defaultConfig(cwd = process.cwd()): ConfigInput {
  const root = publicRoot(cwd);
  // A site of one's own in ./public keeps `/`; the welcome page then lives at /welcome.
  const welcomePath = existsSync(resolve(root, 'index.html')) ? '/welcome' : '/';
  const routes: Extract<ConfigInput['listeners'][number], { protocol: 'http' }>['routes'] = [
    { name: 'welcome', match: { path: welcomePath, method: ['GET', 'HEAD'] }, handler: { type: 'welcome' } },
    { name: 'health', match: { path: '/health' }, handler: { type: 'respond', status: 200, body: 'ok\n' } },
    { name: 'echo', match: { path: '/echo/*' }, handler: { type: 'echo' } },
    // Chat rooms: the page at /chat/ and WebSocket at /chat/<room> (docs/chat.md).
    { name: 'chat', match: { path: '/chat/*' }, handler: { type: 'chat' } },
    // gRPC (docs/grpc.md): the seeds' Greeter and the standard health service, over HTTP/2
    // (h2 on `secure`, h2c on `web`) and as gRPC-Web over HTTP/1.1 too.
    { name: 'grpc-greeter', match: { path: '/helloworld.Greeter/*' }, handler: { type: 'grpc' } },
    { name: 'grpc-health', match: { path: '/grpc.health.v1.Health/*' }, handler: { type: 'grpc' } },
    { name: 'files', match: { path: '/*' }, handler: { type: 'static', root, listing: true } },
  ];
  return {
    listeners: [
      // h2c as well as HTTP/1.1, for gRPC clients without TLS (browsers never speak h2c).
      { name: 'web', protocol: 'http', address: '127.0.0.1:8080', http2: { h2c: true }, routes },
      // The same site over HTTPS, with a certificate from the local development CA (made on
      // first start in the data folder; `switchyard ca` says how to trust its root).
      { name: 'secure', protocol: 'http', address: '127.0.0.1:8443', tls: { issuer: 'internal' }, routes },
      { name: 'echo-tcp', protocol: 'tcp', address: '127.0.0.1:7000', handler: { type: 'echo' } },
      { name: 'echo-udp', protocol: 'udp', address: '127.0.0.1:7001', handler: { type: 'echo' } },
      { name: 'files-tcp', protocol: 'tcp', address: '127.0.0.1:7002', handler: { type: 'file-tcp', root } },
      // The same rooms for `nc`. A chat client may sit quietly in a quiet room for a long time:
      // an hour without a byte either way, rather than the minute that suits other protocols.
      { name: 'chat-tcp', protocol: 'tcp', address: '127.0.0.1:7003', limits: { idleTimeout: '1h' }, handler: { type: 'chat' } },
      {
        name: 'admin',
        protocol: 'http',
        address: '127.0.0.1:9900',
        middleware: { accessLog: false },
        routes: [
          { name: 'metrics', match: { path: '/metrics' }, handler: { type: 'metrics' } },
          { name: 'upstreams', match: { path: '/upstreams' }, handler: { type: 'upstreams' } },
          { name: 'health', match: { path: '/health' }, handler: { type: 'respond', status: 200, body: 'ok\n' } },
          // The writable admin API: /config, /load, /reload, /listeners, target drain/enable, /rooms.
          { name: 'admin-api', match: { path: '/*' }, handler: { type: 'admin' } },
        ],
      },
    ],
  };
}
