import { exitCodeFor, printable } from '@bmc/core';
import { Command, CommanderError } from 'commander';
import pkg from '../package.json';
import { registerInferCommands } from './commands.js';

const program = new Command('bmc-infer')
  .description('bmc inference: detect cells in images, serve a detection API and the browser viewer')
  .version(pkg.version)
  // Commander throws instead of exiting, so its option errors get exit code 2 (usage) below.
  .exitOverride()
  .configureOutput({ outputError: (s, write) => write(printable(s)) });
registerInferCommands(program);
program.parseAsync(process.argv).catch((e: unknown) => {
  // Exit codes by kind of error (@bmc/core): 2 bad usage or bad input, 1 failed work.
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  process.stderr.write(`bmc-infer: ${printable(e instanceof Error ? e.message : String(e))}\n`);
  if (process.env.BMC_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  process.exit(exitCodeFor(e));
});
