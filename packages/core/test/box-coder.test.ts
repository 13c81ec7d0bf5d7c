import { describe, expect, it } from 'vitest';
import { BoxCoder, DEFAULT_XFORM_CLIP } from '../src/index.js';
import { expectClose, loadFixture } from './helpers.js';

const fx = loadFixture('torchvision_core.json').box_coder;

describe('BoxCoder matches torchvision', () => {
  it('uses log(1000/16) as the default clamp', () => {
    expect(DEFAULT_XFORM_CLIP).toBeCloseTo(fx.clip, 12);
  });

  for (const c of fx.cases) {
    it(`encode/decode with weights ${c.weights.join(',')}`, () => {
      const coder = new BoxCoder({ weights: c.weights });
      expectClose(coder.encode(fx.targets, fx.anchors), c.encoded);
      // decode includes rows whose dw/dh exceed the clamp
      expectClose(coder.decode(c.deltas, fx.anchors), c.decoded);
    });
  }

  it('decode(encode(gt)) returns the gt boxes', () => {
    const coder = new BoxCoder({ weights: [10, 10, 5, 5] });
    expectClose(coder.decode(coder.encode(fx.targets, fx.anchors), fx.anchors), fx.targets, 1e-5);
  });

  it('hand case: anchor [0,0,10,10], target [5,5,25,15]', () => {
    // anchor centre (5,5) size 10x10; target centre (15,10) size 20x10
    // dx = (15-5)/10 = 1, dy = (10-5)/10 = 0.5, dw = log 2, dh = log 1 = 0
    const d = new BoxCoder().encode([5, 5, 25, 15], [0, 0, 10, 10]);
    expectClose(d, [1, 0.5, Math.log(2), 0], 1e-6);
  });

  it('rejects mismatched lengths', () => {
    expect(() => new BoxCoder().decode([0, 0, 0, 0], [])).toThrow(/deltas/);
  });
});
