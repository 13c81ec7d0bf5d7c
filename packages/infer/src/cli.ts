import { Command } from 'commander';
import pkg from '../package.json';
import { registerInferCommands } from './commands.js';

const program = new Command('bmc-infer')
  .description('bmc inference: detect cells in images, serve a detection API and the browser viewer')
  .version(pkg.version);
registerInferCommands(program);
program.parseAsync(process.argv).catch((e: Error) => {
  process.stderr.write(`bmc-infer: ${e.message}\n`);
  process.exit(1);
});
