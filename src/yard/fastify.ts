// fastify is not a dependency of Switchyard: its types only, never loaded at run time.
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { replyError } from '../handlers/http/reply.ts';
import { createRoutes, type MountOptions, type MountedRoutes, type RoutesConfig } from './mount.ts';

// Mounted routes as a fastify plugin: `await app.register(switchyardFastify({ routes: [...] }))`.
// An onRequest hook offers every request to the routes first, on fastify's raw request and
// response; one they take is theirs (reply.hijack(): fastify sends nothing for it), one they
// hand back goes on to fastify's own routes and 404, untouched. Registered outside fastify's
// encapsulation (as fastify-plugin does), so the hook sees the requests of every route.
//
// The routes hand a request back while the hook is still running, unless its connection has
// more pipelined requests in hand than `limits.maxPipelinedRequests` (then it waits its turn):
// one handed back after the hook has let go of it cannot reach fastify's routes again, and
// gets the daemon's 404.

/** fastify-plugin's marker: the plugin's hooks apply to the instance it is registered on. */
const SKIP_OVERRIDE = Symbol.for('skip-override');

export interface SwitchyardFastifyPlugin extends FastifyPluginAsync {
  /** The mounted routes, once the plugin has been registered (metrics, the yard underneath). */
  routes?: MountedRoutes;
}

export function switchyardFastify(config: RoutesConfig, options: MountOptions = {}): SwitchyardFastifyPlugin {
  const plugin: SwitchyardFastifyPlugin = async (app: FastifyInstance) => {
    const routes = await createRoutes(config, options);
    plugin.routes = routes;
    app.addHook('onClose', async () => {
      await routes.close();
    });
    app.addHook('onRequest', (request, reply, done) => {
      let handedBack = false;
      let taken = false;
      routes.handle(request.raw, reply.raw, () => {
        handedBack = true;
        if (!taken) return done();
        if (!reply.raw.headersSent) replyError(reply.raw, 404, 'not found');
      });
      if (handedBack) return;
      taken = true;
      reply.hijack();
    });
  };
  (plugin as unknown as Record<symbol, unknown>)[SKIP_OVERRIDE] = true;
  return plugin;
}
