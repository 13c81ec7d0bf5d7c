#!/usr/bin/python3
"""Writes a tiny bmc-format detector ONNX file for apps/infer tests.

Until @bmc/export produces a trained detector, apps/infer is built and tested on
this hand-designed model. It has exactly the interface the exporter writes:
input `images` NCHW float32 [N,3,H,W] (symbolic N/H/W), outputs
`cls_logits [N,A,C]`, `box_deltas [N,A,4]`, `iou_logits [N,A,1]` in anchor order
(level, y, x, anchor), and the bmc.* metadata_props that @bmc/export's
`readBmcMetadata` reads.

The network is not trained, but it is not noise either: per level it pools the
"darkness" of the input (stained cells on a light background) with a small and a
large window and scores anchors by centre-surround contrast, so the detections sit
on the synthetic smear's cells. Box and IoU outputs come from small seeded random
3x3 convolutions so that decoding and the IoU score mode are exercised with
non-trivial values.

Run with Debian's python3-onnx:  /usr/bin/python3 tooling/infer_tiny_detector.py
Writes apps/infer/test/fixtures/tiny-detector.onnx (a few KB).
"""
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'apps', 'infer', 'test', 'fixtures', 'tiny-detector.onnx')

STRIDES = [8, 16, 32]
RATIOS = [0.5, 1.0, 2.0]
SCALES = [1.0, 2 ** (1 / 3), 2 ** (2 / 3)]
A_PER_LOC = len(RATIOS) * len(SCALES)
CLASSES = ['cell', 'dark_cell']
C = len(CLASSES)
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]

rng = np.random.default_rng(20261126)
nodes = []
inits = []


def init(name, arr):
    inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))
    return name


def const_i64(name, values):
    inits.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
    return name


# Darkness 1 - mean(rgb/255) from the normalised input x_c = (p_c/255 - m_c)/s_c:
# p_c/255 = x_c * s_c + m_c, so darkness = sum_c(-s_c/3 * x_c) + (1 - sum_c m_c / 3).
w_dark = np.array([-s / 3 for s in STD], dtype=np.float32).reshape(1, 3, 1, 1)
b_dark = np.array([1 - sum(MEAN) / 3], dtype=np.float32)
nodes.append(helper.make_node('Conv', ['images', init('dark_w', w_dark), init('dark_b', b_dark)], ['dark']))

const_i64('shape_cls', [0, -1, C])
const_i64('shape_box', [0, -1, 4])
const_i64('shape_iou', [0, -1, 1])

cls_parts, box_parts, iou_parts = [], [], []
for li, s in enumerate(STRIDES):
    p = f'l{li}_'
    # Centre window of one stride and a surround window of three strides, both at stride s
    # with an output of ceil(H/s) x ceil(W/s) cells (H, W multiples of the largest stride).
    nodes.append(helper.make_node('AveragePool', ['dark'], [p + 'small'], kernel_shape=[s, s], strides=[s, s]))
    nodes.append(
        helper.make_node(
            'AveragePool', ['dark'], [p + 'large'], kernel_shape=[3 * s, 3 * s], strides=[s, s],
            pads=[s, s, s, s], count_include_pad=0,
        )
    )
    nodes.append(helper.make_node('Concat', [p + 'small', p + 'large'], [p + 'feat'], axis=1))
    # Class logits: 1x1 conv on (small, large); anchors prefer contrast at their own scale.
    w_cls = np.zeros((A_PER_LOC * C, 2, 1, 1), dtype=np.float32)
    b_cls = np.zeros((A_PER_LOC * C,), dtype=np.float32)
    for a in range(A_PER_LOC):
        for c in range(C):
            k = a * C + c
            # class 0: any stained blob; class 1: only very dark centres.
            ratio, scale = divmod(a, len(SCALES))  # anchors are ratio-major
            gain = 30.0 * (1.0 + 0.05 * scale)
            w_cls[k, 0, 0, 0] = gain
            w_cls[k, 1, 0, 0] = -gain
            # Cells are round and about one stride-8 anchor wide: other shapes, sizes and levels are penalised.
            b_cls[k] = -4.0 - 3.0 * c - 4.0 * (RATIOS[ratio] != 1.0) - 1.0 * scale - 5.0 * li
    nodes.append(helper.make_node('Conv', [p + 'feat', init(p + 'cls_w', w_cls), init(p + 'cls_b', b_cls)], [p + 'cls']))
    # Box deltas and IoU logits: small seeded 3x3 convs on the pooled features.
    w_box = (rng.standard_normal((A_PER_LOC * 4, 2, 3, 3)) * 0.05).astype(np.float32)
    b_box = (rng.standard_normal((A_PER_LOC * 4,)) * 0.05).astype(np.float32)
    nodes.append(
        helper.make_node('Conv', [p + 'feat', init(p + 'box_w', w_box), init(p + 'box_b', b_box)], [p + 'box'], pads=[1, 1, 1, 1])
    )
    w_iou = (rng.standard_normal((A_PER_LOC, 2, 3, 3)) * 0.5).astype(np.float32)
    b_iou = np.full((A_PER_LOC,), 0.5, dtype=np.float32)
    nodes.append(
        helper.make_node('Conv', [p + 'feat', init(p + 'iou_w', w_iou), init(p + 'iou_b', b_iou)], [p + 'iou'], pads=[1, 1, 1, 1])
    )
    # [N, A*K, h, w] -> [N, h, w, A*K] -> [N, h*w*A, K]: the (y, x, anchor) order of the exporter.
    for name, shape, parts in (('cls', 'shape_cls', cls_parts), ('box', 'shape_box', box_parts), ('iou', 'shape_iou', iou_parts)):
        nodes.append(helper.make_node('Transpose', [p + name], [p + name + '_t'], perm=[0, 2, 3, 1]))
        nodes.append(helper.make_node('Reshape', [p + name + '_t', shape], [p + name + '_r']))
        parts.append(p + name + '_r')

nodes.append(helper.make_node('Concat', cls_parts, ['cls_logits'], axis=1))
nodes.append(helper.make_node('Concat', box_parts, ['box_deltas'], axis=1))
nodes.append(helper.make_node('Concat', iou_parts, ['iou_logits'], axis=1))

graph = helper.make_graph(
    nodes,
    'bmc_tiny_detector',
    [helper.make_tensor_value_info('images', TensorProto.FLOAT, ['N', 3, 'H', 'W'])],
    [
        helper.make_tensor_value_info('cls_logits', TensorProto.FLOAT, ['N', 'A', C]),
        helper.make_tensor_value_info('box_deltas', TensorProto.FLOAT, ['N', 'A', 4]),
        helper.make_tensor_value_info('iou_logits', TensorProto.FLOAT, ['N', 'A', 1]),
    ],
    inits,
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)], producer_name='bmc-tooling')
model.ir_version = 8


def octave_sizes(base):
    return [int(base * s) for s in SCALES]


meta = {
    'bmc.format': 'bmc-detector-onnx/1',
    'bmc.version': '0.1.0',
    'bmc.class_names': json.dumps(CLASSES),
    'bmc.anchors': json.dumps({'levels': [{'stride': s, 'sizes': octave_sizes(4 * s)} for s in STRIDES], 'aspectRatios': RATIOS}),
    'bmc.box_coder': json.dumps({'weights': [1, 1, 1, 1], 'clip': float(np.log(1000 / 16))}),
    'bmc.input': json.dumps({
        'name': 'images', 'layout': 'NCHW', 'channelOrder': 'RGB', 'sizeMultiple': STRIDES[-1],
        'trainSize': [256, 256], 'normalization': {'scale': 1 / 255, 'mean': MEAN, 'std': STD},
    }),
    'bmc.outputs': json.dumps({'clsLogits': 'cls_logits', 'boxDeltas': 'box_deltas', 'iouLogits': 'iou_logits'}),
    'bmc.score_mode': json.dumps('sqrt(cls*iou)'),
    'bmc.nms': json.dumps({'scoreThreshold': 0.6, 'topK': 1000, 'nmsThreshold': 0.3, 'maxDetections': 100, 'classAgnostic': False}),
    'bmc.model': json.dumps({'name': 'tiny-detector', 'note': 'hand-designed test fixture (tooling/infer_tiny_detector.py), not trained'}),
}
for k, v in meta.items():
    entry = model.metadata_props.add()
    entry.key = k
    entry.value = v

onnx.checker.check_model(model)
os.makedirs(os.path.dirname(OUT), exist_ok=True)
onnx.save(model, OUT)
print(f'wrote {os.path.relpath(OUT)} ({os.path.getsize(OUT)} bytes)')
