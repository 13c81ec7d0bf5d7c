import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { queueName, redisOptions, safeUrl } from '../src/jobs/connection.js';
import {
  fileIdentity,
  finishedTiles,
  readTile,
  resultId,
  tileFile,
  writeTile,
} from '../src/jobs/tile-store.js';

const dir = mkdtempSync(join(tmpdir(), 'bmc-jobs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('queue URLs', () => {
  it('reads host, port, credentials and database from a redis:// URL', () => {
    const o = redisOptions('redis://lab:s%40cret@queue-host:6380/3');
    expect(o).toMatchObject({ host: 'queue-host', port: 6380, username: 'lab', password: 's@cret', db: 3 });
    // Commands wait for a reconnect instead of failing: what lets a Redis restart pause a run.
    expect(o.maxRetriesPerRequest).toBeNull();
    expect(o.retryStrategy!(100)).toBe(2_000);
    expect(redisOptions('redis://127.0.0.1')).toMatchObject({ port: 6379, db: 0 });
    expect(redisOptions('rediss://h:1').tls).toEqual({});
  });

  it('refuses what is not a Redis URL, naming it, as a usage error (exit 2)', () => {
    const bad = (url: string) => {
      try {
        redisOptions(url);
      } catch (e) {
        return { kind: (e as { kind?: string }).kind, message: (e as Error).message };
      }
      throw new Error(`${url} was accepted`);
    };
    expect(bad('localhost:6379')).toEqual({
      kind: 'usage',
      message: '--queue localhost:6379: expected a redis:// or rediss:// URL, got localhost:',
    });
    expect(bad('not a url').message).toBe('--queue not a url: not a URL (expected redis://host:port)');
    expect(bad('redis://h:1/x').message).toBe("--queue redis://h:1/x: 'x' is not a database number");
    // The password never reaches a message.
    expect(bad('http://u:pw@h').message).not.toContain('pw');
    expect(safeUrl('redis://:pw@h:1')).toBe('redis://:***@h:1');
  });

  it('names one queue per model', () => {
    expect(queueName('ab'.repeat(32))).toBe('bmc-detect-abababababababab');
  });
});

describe('tile store', () => {
  it('round-trips a tile exactly (float32 boxes and scores through JSON)', async () => {
    const boxes = new Float32Array(400);
    const scores = new Float32Array(100);
    // Values a tile holds: offsets of tens of thousands of pixels plus fractions, scores in (0, 1).
    for (let i = 0; i < boxes.length; i++) boxes[i] = 39_000 + Math.sin(i) * 1000 + i / 7;
    for (let i = 0; i < scores.length; i++) scores[i] = (i + 0.5) / 101;
    const classes = Int32Array.from({ length: 100 }, (_, i) => i % 3);
    const file = tileFile(dir, 'slide', 7);
    await writeTile(file, { boxes, scores, classes });
    const back = await readTile(file);
    expect(back.boxes).toEqual(boxes);
    expect(back.scores).toEqual(scores);
    expect(back.classes).toEqual(classes);
    expect([...(await finishedTiles(dir, 'slide'))]).toEqual([7]);
    expect((await finishedTiles(dir, 'no-such-slide')).size).toBe(0);
  });

  it("identifies a file by its size and ends, and an id by everything that decides a tile's result", async () => {
    const a = join(dir, 'a.bin');
    const b = join(dir, 'b.bin');
    const big = Buffer.alloc(3 << 20, 1);
    writeFileSync(a, big);
    writeFileSync(b, big);
    expect(await fileIdentity(a)).toBe(await fileIdentity(b)); // a copy keeps its identity
    big[big.length - 1] = 2;
    writeFileSync(b, big);
    expect(await fileIdentity(a)).not.toBe(await fileIdentity(b)); // a change in its last MiB does not
    const id = resultId({ input: 'x', model: 'm', tiling: { tileSize: 320 } });
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(resultId({ input: 'x', model: 'm', tiling: { tileSize: 320 } })).toBe(id);
    expect(resultId({ input: 'x', model: 'm', tiling: { tileSize: 512 } })).not.toBe(id);
    expect(resultId({ input: 'x', model: 'n', tiling: { tileSize: 320 } })).not.toBe(id);
  });
});
