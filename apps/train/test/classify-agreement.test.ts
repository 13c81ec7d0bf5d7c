import { describe, expect, it } from 'vitest';
import { typingAgreement } from '../src/classify/typing-agreement.js';

describe('typing agreement (detected + typed cells against known cells)', () => {
  it('matches greedily by score at IoU >= 0.5 and compares types (hand-computed case)', () => {
    const r = typingAgreement([
      {
        known: [
          { box: [0, 0, 10, 10], type: 'blast' },
          { box: [20, 0, 30, 10], type: 'band' },
          { box: [40, 0, 50, 10], type: 'plasma' }, // missed by the detector
        ],
        called: [
          // IoU 0.81 with the blast; the higher score takes it first.
          { box: [1, 1, 10, 10], score: 0.9, type: 'blast' },
          // Also overlaps the blast (IoU 0.67) but it is taken: no match, not counted.
          { box: [0, 0, 10, 15], score: 0.8, type: 'lymphocyte' },
          // The band, called segmented: a typed disagreement.
          { box: [20, 0, 30, 11], score: 0.7, type: 'segmented' },
          // Background: IoU 0 with everything.
          { box: [100, 100, 110, 110], score: 0.6, type: 'blast' },
        ],
      },
      {
        known: [{ box: [0, 0, 10, 10], type: 'eosinophil' }],
        called: [{ box: [0, 0, 10, 10], score: 0.5, type: 'unclassified' }],
      },
    ]);
    expect(r).toEqual({
      known: 4,
      matched: 3,
      typed: 2,
      agree: 1,
      confusion: { blast: { blast: 1 }, band: { segmented: 1 }, eosinophil: { unclassified: 1 } },
    });
  });

  it('no detections or no known cells: nothing matched', () => {
    expect(typingAgreement([{ known: [], called: [{ box: [0, 0, 1, 1], score: 1, type: 'x' }] }])).toEqual({
      known: 0,
      matched: 0,
      typed: 0,
      agree: 0,
      confusion: {},
    });
  });
});
