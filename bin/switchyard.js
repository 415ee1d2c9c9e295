#!/usr/bin/env node
// The published bin runs the TypeScript sources through tsx, so there is no build step
// between a checkout and a running daemon.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
