import type { OnnxGraphBuilder } from './graph-builder.js';
import { onnxAxis } from './layout.js';

/** tfjs activation identifiers (as `getConfig()` serialises them) this exporter writes. */
export const SUPPORTED_ACTIVATIONS = [
  'linear',
  'relu',
  'relu6',
  'sigmoid',
  'hardSigmoid',
  'tanh',
  'softmax',
  'logSoftmax',
  'elu',
  'selu',
  'softplus',
  'softsign',
  'swish',
  'mish',
  'gelu',
] as const;

/**
 * Appends the ONNX form of a tfjs activation to `x` (a value of tfjs rank `rank`)
 * and returns the result's name; `linear` adds nothing.
 */
export function applyActivation(
  g: OnnxGraphBuilder,
  x: string,
  activation: string,
  base: string,
  rank: number,
  where: string,
): string {
  const one = (op: string, attrs = {}) => g.node(op, [x], `${base}/${activation}`, attrs)[0]!;
  switch (activation) {
    case 'linear':
      return x;
    case 'relu':
      return one('Relu');
    case 'relu6':
      return g.node('Clip', [x, g.float([0], true), g.float([6], true)], `${base}/relu6`)[0]!;
    case 'sigmoid':
      return one('Sigmoid');
    case 'hardSigmoid':
      // tfjs: clip(0.2 x + 0.5, 0, 1), ONNX HardSigmoid's defaults.
      return one('HardSigmoid', { alpha: { float: 0.2 }, beta: { float: 0.5 } });
    case 'logSoftmax':
      return one('LogSoftmax', { axis: { int: onnxAxis(-1, rank) } });
    case 'tanh':
      return one('Tanh');
    case 'softmax':
      return one('Softmax', { axis: { int: onnxAxis(-1, rank) } });
    case 'elu':
      return one('Elu', { alpha: { float: 1 } });
    case 'selu':
      return one('Selu');
    case 'softplus':
      return one('Softplus');
    case 'softsign':
      return one('Softsign');
    case 'swish': {
      const s = g.node('Sigmoid', [x], `${base}/swish_sigmoid`)[0]!;
      return g.node('Mul', [x, s], `${base}/swish`)[0]!;
    }
    case 'mish': {
      const sp = g.node('Softplus', [x], `${base}/mish_softplus`)[0]!;
      const t = g.node('Tanh', [sp], `${base}/mish_tanh`)[0]!;
      return g.node('Mul', [x, t], `${base}/mish`)[0]!;
    }
    case 'gelu': {
      // tfjs's exact GELU, x * 0.5 * (1 + erf(x / sqrt(2))); ONNX has no Gelu op before opset 20.
      const e = g.node(
        'Erf',
        [g.node('Div', [x, g.float([Math.SQRT2], true)], `${base}/gelu_div`)[0]!],
        `${base}/gelu_erf`,
      )[0]!;
      const cdf = g.node('Add', [e, g.float([1], true)], `${base}/gelu_add`)[0]!;
      const half = g.node('Mul', [x, g.float([0.5], true)], `${base}/gelu_half`)[0]!;
      return g.node('Mul', [half, cdf], `${base}/gelu`)[0]!;
    }
    default:
      throw new UnsupportedLayerError(
        `ONNX export: ${where} uses activation '${activation}', which the exporter does not support ` +
          `(supported: ${SUPPORTED_ACTIVATIONS.join(', ')})`,
      );
  }
}

/** A layer, activation or configuration the ONNX writer cannot express. */
export class UnsupportedLayerError extends Error {
  override name = 'UnsupportedLayerError';
}
