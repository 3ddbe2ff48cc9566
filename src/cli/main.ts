#!/usr/bin/env node
// The coordvol command line. Commands parse their arguments and call the library (STYLE §8).
import { Command } from 'commander';
import { registerStart } from './start.js';

const program = new Command();
program
  .name('coordvol')
  .description('a self-hosted coordination store for a GlusterFS-style cluster')
  .showHelpAfterError();
registerStart(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`coordvol: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
