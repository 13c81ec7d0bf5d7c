/**
 * Optional in-graph post-processing for a detector export (batch size 1):
 * anchors rebuilt from the symbolic input size, scores (`cls`, `cls*iou` or
 * `sqrt(cls*iou)`), per-level top-k, box decoding (torchvision BoxCoder with the
 * dw/dh clamp), clipping to the image, class-aware NonMaxSuppression and the
 * final top `maxDetections` — the semantics of `@bmc/heads-iou`'s
 * `postprocessDetections` (= torchvision's RetinaNet.postprocess_detections).
 */
import { baseAnchors } from '@bmc/core';
import type { BmcMetadata } from '../metadata.js';
import type { OnnxGraphBuilder, OnnxValueInfo } from './graph-builder.js';

export const POSTPROCESS_OUTPUTS = {
  boxes: 'det_boxes',
  scores: 'det_scores',
  labels: 'det_labels',
} as const;

export interface PostprocessGraphInput {
  /** Graph input `[1, 3, H, W]`. */
  image: string;
  /** `[1, A, C]`, `[1, A, 4]`, `[1, A, 1]` value names. */
  clsLogits: string;
  boxDeltas: string;
  iouLogits?: string;
  numClasses: number;
}

export function appendPostprocess(
  g: OnnxGraphBuilder,
  io: PostprocessGraphInput,
  meta: Pick<BmcMetadata, 'anchors' | 'boxCoder' | 'scoreMode' | 'nms'>,
): OnnxValueInfo[] {
  const P = 'postprocess';
  const n = (op: string, inputs: string[], name: string, attrs = {}) =>
    g.node(op, inputs, `${P}/${name}`, attrs)[0]!;
  const i64 = (v: number[]) => g.int64(v);
  const f32 = (v: number) => g.float([v], true);
  const C = io.numClasses;
  const { nms, scoreMode } = meta;
  if (scoreMode !== 'cls' && !io.iouLogits)
    throw new Error(`withPostprocess: score mode '${scoreMode}' needs iou_logits`);

  const shape = n('Shape', [io.image], 'image_shape');
  const H = n('Slice', [shape, i64([2]), i64([3])], 'H'); // int64 [1]
  const W = n('Slice', [shape, i64([3]), i64([4])], 'W');
  const Hf = n('Cast', [H], 'Hf', { to: { int: 1 } });
  const Wf = n('Cast', [W], 'Wf', { to: { int: 1 } });

  const perLocation = meta.anchors.levels[0]!.sizes.length * meta.anchors.aspectRatios.length;
  let start = i64([0]);
  const parts = {
    deltas: [] as string[],
    anchors: [] as string[],
    scores: [] as string[],
    labels: [] as string[],
  };
  meta.anchors.levels.forEach((level, l) => {
    const L = `level${l}`;
    const s = level.stride;
    // Feature size ceil(in / stride), as @bmc/core's featureSize.
    const fh = n('Div', [n('Add', [H, i64([s - 1])], `${L}/h_up`), i64([s])], `${L}/fh`);
    const fw = n('Div', [n('Add', [W, i64([s - 1])], `${L}/w_up`), i64([s])], `${L}/fw`);
    const range = (len: string, axis: string) => {
      const scalar = n('Squeeze', [len, i64([0])], `${L}/${axis}_len`);
      const r = n('Range', [g.int64([0], true), scalar, g.int64([1], true)], `${L}/${axis}_range`);
      return n('Mul', [n('Cast', [r], `${L}/${axis}_f`, { to: { int: 1 } }), f32(s)], `${L}/shift_${axis}`);
    };
    const grid = n('Concat', [fh, fw], `${L}/grid_shape`, { axis: { int: 0 } });
    const sx = n('Expand', [n('Unsqueeze', [range(fw, 'x'), i64([0])], `${L}/sx_row`), grid], `${L}/sx`);
    const sy = n('Expand', [n('Unsqueeze', [range(fh, 'y'), i64([1])], `${L}/sy_col`), grid], `${L}/sy`);
    const ux = n('Unsqueeze', [sx, i64([2])], `${L}/ux`);
    const uy = n('Unsqueeze', [sy, i64([2])], `${L}/uy`);
    const shifts = n('Concat', [ux, uy, ux, uy], `${L}/shifts`, { axis: { int: 2 } }); // [fh, fw, 4]
    const base = g.floatTensor(
      `${P}/${L}/base_anchors`,
      [1, perLocation, 4],
      baseAnchors(level.sizes, meta.anchors.aspectRatios, meta.anchors.roundBase ?? true),
    );
    const anchors = n(
      'Reshape',
      [
        n('Add', [n('Reshape', [shifts, i64([-1, 1, 4])], `${L}/shifts_col`), base], `${L}/anchors_grid`),
        i64([-1, 4]),
      ],
      `${L}/anchors`,
    ); // [A_l, 4], order (y, x, anchor)
    const count = n('Mul', [n('Mul', [fh, fw], `${L}/cells`), i64([perLocation])], `${L}/count`);
    const end = n('Add', [start, count], `${L}/end`);
    const slice = (x: string, what: string) => n('Slice', [x, start, end, i64([1])], `${L}/${what}`);

    let score = n('Sigmoid', [slice(io.clsLogits, 'cls')], `${L}/cls_prob`); // [1, A_l, C]
    if (scoreMode !== 'cls') {
      score = n('Mul', [score, n('Sigmoid', [slice(io.iouLogits!, 'iou')], `${L}/iou_prob`)], `${L}/cls_iou`);
      if (scoreMode === 'sqrt(cls*iou)') score = n('Sqrt', [score], `${L}/sqrt_cls_iou`);
    }
    const flat = n('Reshape', [score, i64([1, -1])], `${L}/flat_scores`);
    const k = n('Min', [n('Mul', [count, i64([C])], `${L}/pairs`), i64([nms.topK])], `${L}/k`);
    const [vals, idx] = g.node('TopK', [flat, k], `${P}/${L}/topk`, { axis: { int: -1 } }, 2) as [
      string,
      string,
    ];
    const idx0 = n('Squeeze', [idx, i64([0])], `${L}/idx`);
    const anchorIdx = n('Div', [idx0, i64([C])], `${L}/anchor_idx`);
    parts.labels.push(n('Mod', [idx0, i64([C])], `${L}/labels`));
    parts.scores.push(n('Squeeze', [vals, i64([0])], `${L}/scores`));
    const deltas = n('Squeeze', [slice(io.boxDeltas, 'box'), i64([0])], `${L}/deltas_all`);
    parts.deltas.push(n('Gather', [deltas, anchorIdx], `${L}/deltas`, { axis: { int: 0 } }));
    parts.anchors.push(n('Gather', [anchors, anchorIdx], `${L}/anchor_boxes`, { axis: { int: 0 } }));
    start = end;
  });
  const cat = (xs: string[], name: string) =>
    xs.length === 1 ? xs[0]! : n('Concat', xs, name, { axis: { int: 0 } });
  const deltas = cat(parts.deltas, 'deltas'); // [M, 4]
  const anchors = cat(parts.anchors, 'anchor_boxes'); // [M, 4]
  const scores = cat(parts.scores, 'scores'); // [M]
  const labels = cat(parts.labels, 'labels'); // [M] int64

  // torchvision BoxCoder.decode_single, as @bmc/core's BoxCoder.decodeRow.
  const col = (x: string, j: number, name: string) => n('Slice', [x, i64([j]), i64([j + 1]), i64([1])], name);
  const [wx, wy, ww, wh] = meta.boxCoder.weights;
  const ax1 = col(anchors, 0, 'ax1');
  const ay1 = col(anchors, 1, 'ay1');
  const aw = n('Sub', [col(anchors, 2, 'ax2'), ax1], 'aw');
  const ah = n('Sub', [col(anchors, 3, 'ay2'), ay1], 'ah');
  const acx = n('Add', [ax1, n('Mul', [aw, f32(0.5)], 'half_aw')], 'acx');
  const acy = n('Add', [ay1, n('Mul', [ah, f32(0.5)], 'half_ah')], 'acy');
  const dx = n('Div', [col(deltas, 0, 'd0'), f32(wx)], 'dx');
  const dy = n('Div', [col(deltas, 1, 'd1'), f32(wy)], 'dy');
  const dw = n('Min', [n('Div', [col(deltas, 2, 'd2'), f32(ww)], 'dw_raw'), f32(meta.boxCoder.clip)], 'dw');
  const dh = n('Min', [n('Div', [col(deltas, 3, 'd3'), f32(wh)], 'dh_raw'), f32(meta.boxCoder.clip)], 'dh');
  const cx = n('Add', [n('Mul', [dx, aw], 'dx_aw'), acx], 'cx');
  const cy = n('Add', [n('Mul', [dy, ah], 'dy_ah'), acy], 'cy');
  const hw = n('Mul', [n('Mul', [n('Exp', [dw], 'exp_dw'), f32(0.5)], 'half_exp_dw'), aw], 'hw');
  const hh = n('Mul', [n('Mul', [n('Exp', [dh], 'exp_dh'), f32(0.5)], 'half_exp_dh'), ah], 'hh');
  const clip = (v: string, hi: string, name: string) =>
    n('Min', [n('Max', [v, f32(0)], `${name}_lo`), hi], name);
  const boxes = n(
    'Concat',
    [
      clip(n('Sub', [cx, hw], 'x1_raw'), Wf, 'x1'),
      clip(n('Sub', [cy, hh], 'y1_raw'), Hf, 'y1'),
      clip(n('Add', [cx, hw], 'x2_raw'), Wf, 'x2'),
      clip(n('Add', [cy, hh], 'y2_raw'), Hf, 'y2'),
    ],
    'boxes',
    { axis: { int: 1 } },
  ); // [M, 4]

  // Class-aware NMS: each candidate scores in its own class row, -1 (never kept) elsewhere.
  // Class-agnostic: one row for all.
  let nmsScores: string;
  if (nms.classAgnostic) {
    nmsScores = n('Unsqueeze', [scores, i64([0, 1])], 'nms_scores');
  } else {
    const onehot = n('OneHot', [labels, i64([C]), g.float([0, 1])], 'onehot', { axis: { int: -1 } }); // [M, C]
    const plusOne = n('Add', [n('Unsqueeze', [scores, i64([1])], 'scores_col'), f32(1)], 'scores_plus1');
    const perClass = n('Sub', [n('Mul', [onehot, plusOne], 'class_scores_p1'), f32(1)], 'class_scores');
    const rows = n('Transpose', [perClass], 'class_rows', { perm: { ints: [1, 0] } });
    nmsScores = n('Unsqueeze', [rows, i64([0])], 'nms_scores');
  }
  const nmsBoxes = n('Unsqueeze', [boxes, i64([0])], 'nms_boxes');
  const selected = n(
    'NonMaxSuppression',
    [
      nmsBoxes,
      nmsScores,
      i64([nms.maxDetections]),
      g.float([nms.nmsThreshold]),
      g.float([nms.scoreThreshold]),
    ],
    'nms',
  ); // [K, 3] (batch, class, box)
  const boxIdx = n('Gather', [selected, g.int64([2], true)], 'kept', { axis: { int: 1 } }); // [K]
  const keptScores = n('Gather', [scores, boxIdx], 'kept_scores', { axis: { int: 0 } });
  const k = n('Min', [n('Shape', [keptScores], 'kept_count'), i64([nms.maxDetections])], 'final_k');
  const [finalScores, order] = g.node('TopK', [keptScores, k], `${P}/final_topk`, {}, [
    g.reserve(POSTPROCESS_OUTPUTS.scores),
    g.name(`${P}/final_order`),
  ]) as [string, string];
  const finalIdx = n('Gather', [boxIdx, order], 'final_idx', { axis: { int: 0 } });
  g.node('Gather', [boxes, finalIdx], `${P}/det_boxes`, { axis: { int: 0 } }, [
    g.reserve(POSTPROCESS_OUTPUTS.boxes),
  ]);
  g.node('Gather', [labels, finalIdx], `${P}/det_labels`, { axis: { int: 0 } }, [
    g.reserve(POSTPROCESS_OUTPUTS.labels),
  ]);
  return [
    { name: POSTPROCESS_OUTPUTS.boxes, shape: ['D', 4] },
    { name: finalScores, shape: ['D'] },
    { name: POSTPROCESS_OUTPUTS.labels, shape: ['D'], elemType: 'int64' },
  ];
}
