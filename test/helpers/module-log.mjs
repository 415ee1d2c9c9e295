// `node --import ./test/helpers/module-log.mjs ...`: appends the URL of every ES module the process
// loads, one a line, to the file named by $SWITCHYARD_MODULE_LOG (test/cli-startup.test.ts reads
// it to see what a command loaded). Plain JavaScript: it runs before tsx in the loader chain.
import { register } from 'node:module';

register(new URL('./module-log-hooks.mjs', import.meta.url));
