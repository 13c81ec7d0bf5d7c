import * as tf from '@tensorflow/tfjs';

/**
 * A small vision transformer encoder for cell crops. The published recognition work uses an
 * improved ViT; this one is bmc's own choice of a small, CPU-trainable ViT, not the thesis's
 * architecture:
 *
 * - patch embedding: a `patch` x `patch` Conv2D with stride `patch` (32 px crops, patch 4 -> 8 x 8
 *   = 64 tokens of `dim` channels);
 * - position: a conditional position encoding (CPVT's "PEG", Chu et al. 2021): a 3 x 3 convolution
 *   of the token grid added to the tokens after the first block. CPVT's is depthwise; this one is a
 *   full convolution because tfjs's wasm backend (bmc's CPU training backend) has no depthwise
 *   convolution gradients, and at 64 tokens of 64 channels it costs 2.4 M multiply-adds per crop.
 *   A learned position table would need a custom weight-only layer, which every process that loads
 *   a checkpoint (`tf.loadLayersModel`) would have to register; the PEG uses built-in layers only,
 *   and it follows the grid, so it needs no interpolation at another crop size;
 * - `depth` pre-norm blocks: `x + MHSA(LN(x))`, then `x + MLP(LN(x))` (Dense `dim * mlpRatio`,
 *   GELU, Dense `dim`);
 * - a final LayerNorm and the mean of the tokens (no class token).
 *
 * Built from tfjs's own layers so the trainer trains it as any functional model and `@bmc/export`
 * converts it layer by layer. tfjs's `Dot` layer multiplies rank-3 tensors only, so each head has
 * its own query / key / value Dense of `dim / heads` units (the same function as one `dim` Dense
 * split into heads), its `Dot`-`Softmax`-`Dot`, and the heads are concatenated before the output
 * projection.
 */
export interface VitOptions {
  /** Token width (default 64). */
  dim?: number;
  /** Transformer blocks (default 4). */
  depth?: number;
  /** Attention heads; must divide `dim` (default 4). */
  heads?: number;
  /** Patch side in pixels; must divide the crop size (default: crop size / 8, so 64 tokens). */
  patch?: number;
  /** MLP hidden width as a multiple of `dim` (default 4). */
  mlpRatio?: number;
}

export const VIT_DEFAULTS = { dim: 64, depth: 4, heads: 4, mlpRatio: 4 } as const;

/** LayerNorm epsilon (PyTorch's default; tfjs's own 1e-3 would blur small-variance tokens). */
const LN_EPS = 1e-5;

/** What error messages call each size (a CLI passes its flag names). */
export interface VitOptionNames {
  dim: string;
  depth: string;
  heads: string;
  patch: string;
  mlpRatio: string;
  cropSize: string;
}
const OPTION_NAMES: VitOptionNames = {
  dim: 'vit: dim',
  depth: 'vit: depth',
  heads: 'vit: heads',
  patch: 'vit: patch',
  mlpRatio: 'vit: mlpRatio',
  cropSize: 'the crop size',
};

/** The options with their defaults filled in, validated against the crop size (a RangeError names the problem). */
export function resolveVitOptions(
  cropSize: number,
  o: VitOptions = {},
  names: VitOptionNames = OPTION_NAMES,
): Required<VitOptions> {
  const r = {
    dim: o.dim ?? VIT_DEFAULTS.dim,
    depth: o.depth ?? VIT_DEFAULTS.depth,
    heads: o.heads ?? VIT_DEFAULTS.heads,
    patch: o.patch ?? cropSize / 8,
    mlpRatio: o.mlpRatio ?? VIT_DEFAULTS.mlpRatio,
  };
  const n = names;
  if (o.patch === undefined && !Number.isInteger(r.patch))
    throw new RangeError(
      `${n.patch}: the default (${n.cropSize} / 8) needs ${n.cropSize} divisible by 8, got ${cropSize}; give a patch side`,
    );
  for (const k of ['dim', 'depth', 'heads', 'patch', 'mlpRatio'] as const)
    if (!Number.isInteger(r[k]) || r[k] < 1)
      throw new RangeError(`${n[k]} must be a positive integer, got ${r[k]}`);
  if (r.dim % r.heads !== 0) throw new RangeError(`${n.heads} (${r.heads}) must divide ${n.dim} (${r.dim})`);
  if (cropSize % r.patch !== 0)
    throw new RangeError(`${n.patch} (${r.patch}) must divide ${n.cropSize} (${cropSize})`);
  if (cropSize / r.patch < 2)
    throw new RangeError(`${n.patch} (${r.patch}) leaves fewer than 2 x 2 tokens on ${cropSize} px crops`);
  return r;
}

const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) =>
  layer.apply(x) as tf.SymbolicTensor;

function layerNorm(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
  return apply(tf.layers.layerNormalization({ axis: -1, epsilon: LN_EPS, name }), x);
}

/** Multi-head self-attention on `[N, T, dim]` tokens. */
function attention(x: tf.SymbolicTensor, dim: number, heads: number, name: string): tf.SymbolicTensor {
  const dh = dim / heads;
  const outs: tf.SymbolicTensor[] = [];
  for (let h = 0; h < heads; h++) {
    const proj = (w: string) => apply(tf.layers.dense({ units: dh, name: `${name}.${w}${h}` }), x);
    // Scaling the query by 1/sqrt(dh) scales the scores: T x dh values instead of T x T.
    const q = apply(tf.layers.rescaling({ scale: 1 / Math.sqrt(dh), name: `${name}.scale${h}` }), proj('q'));
    const k = proj('k');
    const v = proj('v');
    const scores = apply(tf.layers.dot({ axes: [2, 2], name: `${name}.scores${h}` }), [q, k]);
    const weights = apply(tf.layers.softmax({ axis: -1, name: `${name}.softmax${h}` }), scores);
    outs.push(apply(tf.layers.dot({ axes: [2, 1], name: `${name}.mix${h}` }), [weights, v]));
  }
  const joined =
    heads > 1 ? apply(tf.layers.concatenate({ axis: -1, name: `${name}.heads` }), outs) : outs[0]!;
  return apply(tf.layers.dense({ units: dim, name: `${name}.proj` }), joined);
}

function block(x: tf.SymbolicTensor, o: Required<VitOptions>, name: string): tf.SymbolicTensor {
  const a = attention(layerNorm(x, `${name}.norm1`), o.dim, o.heads, `${name}.attn`);
  const x1 = apply(tf.layers.add({ name: `${name}.add1` }), [x, a]);
  const h = apply(
    tf.layers.dense({ units: o.dim * o.mlpRatio, activation: 'gelu', name: `${name}.mlp.fc1` }),
    layerNorm(x1, `${name}.norm2`),
  );
  const m = apply(tf.layers.dense({ units: o.dim, name: `${name}.mlp.fc2` }), h);
  return apply(tf.layers.add({ name: `${name}.add2` }), [x1, m]);
}

/**
 * The ViT encoder on an NHWC crop input `[N, S, S, 3]`: returns the mean of the normalised tokens,
 * `[N, dim]` (the classifier adds its linear layer).
 */
export function vitEncoder(input: tf.SymbolicTensor, options: VitOptions = {}): tf.SymbolicTensor {
  const cropSize = input.shape[1] as number;
  const o = resolveVitOptions(cropSize, options);
  const grid = cropSize / o.patch;
  const tokens = grid * grid;
  const patches = apply(
    tf.layers.conv2d({
      filters: o.dim,
      kernelSize: o.patch,
      strides: o.patch,
      padding: 'valid',
      name: 'vit.patch_embed',
    }),
    input,
  );
  const toTokens = (t: tf.SymbolicTensor, name: string) =>
    apply(tf.layers.reshape({ targetShape: [tokens, o.dim], name }), t);
  let x = toTokens(patches, 'vit.tokens');
  for (let i = 0; i < o.depth; i++) {
    x = block(x, o, `vit.blocks.${i}`);
    if (i === 0) {
      const g = apply(tf.layers.reshape({ targetShape: [grid, grid, o.dim], name: 'vit.pos.grid' }), x);
      const pos = apply(
        tf.layers.conv2d({ filters: o.dim, kernelSize: 3, padding: 'same', name: 'vit.pos.conv' }),
        g,
      );
      x = toTokens(apply(tf.layers.add({ name: 'vit.pos.add' }), [g, pos]), 'vit.pos.tokens');
    }
  }
  const normed = layerNorm(x, 'vit.norm');
  return apply(tf.layers.globalAveragePooling1d({ name: 'vit.pool' }), normed);
}
