import { describe, expect, it } from 'vitest';
import { jsonLineProcess } from '../src/index.mjs';

// A stand-in for torch_ref.py: says hello, then answers each job with its `n` doubled.
const ECHO = `
const rl = require('node:readline').createInterface({ input: process.stdin });
console.log(JSON.stringify({ hello: 'ready' }));
rl.on('line', (l) => console.log(JSON.stringify({ doubled: JSON.parse(l).n * 2 })));
`;

describe('jsonLineProcess', () => {
  it('resolves the hello line, then each answer to its own job in order, and exits on close', async () => {
    const p = jsonLineProcess(process.execPath, ['-e', ECHO]);
    expect(await p.hello).toEqual({ hello: 'ready' });
    const answers = await Promise.all([1, 2, 3].map((n) => p.ask({ n })));
    expect(answers).toEqual([{ doubled: 2 }, { doubled: 4 }, { doubled: 6 }]);
    expect(await p.ask({ n: 21 })).toEqual({ doubled: 42 });
    p.close();
  });
});
