/** A handler refused its config at provision time (e.g. a static root that does not exist). */
export class ProvisionError extends Error {
  readonly code = 'SWITCHYARD_PROVISION_FAILED';
  constructor(
    /** Config path of the handler, e.g. `listeners[0].routes[2].handler`. */
    readonly path: string,
    readonly handlerType: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${path} (${handlerType}): ${reason}`, options);
    this.name = 'ProvisionError';
  }
}
