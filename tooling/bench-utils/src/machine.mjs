// The machine a bench ran on, for its result file: the lscpu model and flags, the cores, Node's
// version and the load average (the house rule for every committed figure).
import { execFileSync } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';

/** The 1 / 5 / 15-minute load average, to two decimals. */
export const loadAverage = () => loadavg().map((l) => +l.toFixed(2));

/** lscpu's model name and flags ('unknown' and '' where lscpu is missing), cores, Node, load now. */
export function machineRecord() {
  let lscpu = '';
  try {
    lscpu = execFileSync('lscpu', { encoding: 'utf8' });
  } catch {
    // no lscpu: the record says so through 'unknown'
  }
  return {
    cpu: /Model name:\s*(.*)/.exec(lscpu)?.[1]?.trim() ?? 'unknown',
    flags: /Flags:\s*(.*)/.exec(lscpu)?.[1]?.trim() ?? '',
    cores: availableParallelism(),
    node: process.version,
    loadavgAtStart: loadAverage(),
  };
}
