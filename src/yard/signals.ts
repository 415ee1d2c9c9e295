import type { Yard } from './yard.ts';

/**
 * SIGTERM/SIGINT: drain (stop accepting, finish in-flight work up to the grace period), then exit
 * 0. A second signal exits at once with status 1. Returns a function that removes the handlers.
 */
export function exitOnSignals(yard: Yard, print: (line: string) => void = (l) => process.stderr.write(l + '\n')): () => void {
  let received: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (received) {
      print(`switchyard: ${signal} again: exiting now`);
      process.exit(1);
    }
    received = signal;
    print(`switchyard: ${signal}: draining, up to ${yard.config.shutdown.grace / 1000}s (send it again to exit at once)`);
    yard.stop().then(
      ({ cutOff }) => {
        print(cutOff > 0 ? `switchyard: stopped; ${cutOff} connection(s) cut off at the deadline` : 'switchyard: stopped');
        process.exit(0);
      },
      (err: unknown) => {
        print(`switchyard: error while stopping: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };
}
