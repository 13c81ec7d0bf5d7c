"""Training-step timing of the published detector in PyTorch (the reference for
packages/engine/bench/detector-step.bench.mjs).

thesis: torchvision ResNet50 body (FrozenBatchNorm2d, trainable layers 3, as resnet_fpn_backbone),
FPN P2-P5 on C2..C5, the PAN-attn bottom-up path N2-N5 (PanReference from
tooling/fixtures/network_fixtures.py, the module our TS neck is checked against), RetinaNetHead towers
(4 x conv3x3+ReLU, 256 ch, 9 anchors, 1 class) and an IoU conv on the box tower.
baseline: torchvision's RetinaNet R50-FPN body + head (P3-P7, FrozenBatchNorm2d, trainable layers 3).

A step: forward at 512x512 batch 2 (random input), sigmoid focal loss on every anchor, L1 on the deltas
and BCE on the IoU logits over a random 1% positive mask, backward, SGD (momentum 0.9) step.
Mode `infer`: the eval-mode forward under torch.no_grad() instead (the reference for the exported network
in packages/export/bench/export.bench.mjs).
Usage: /usr/bin/python3 tooling/bench/thesis_model.py [thesis|baseline|both] [iters] [size] [batch] [train|infer]
Prints one JSON line {"thesis": {"ms": ..., "params": ...}, ...}.
"""
import ast
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet50
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops import FeaturePyramidNetwork, sigmoid_focal_loss
from torchvision.ops.feature_pyramid_network import LastLevelP6P7
from torchvision.ops.misc import FrozenBatchNorm2d

HERE = os.path.dirname(os.path.abspath(__file__))


def load_pan_reference():
    """PanReference from network_fixtures.py without running that script (it writes fixtures on import)."""
    path = os.path.join(HERE, '..', 'fixtures', 'network_fixtures.py')
    with open(path) as f:
        tree = ast.parse(f.read())
    cls = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == 'PanReference']
    if not cls:
        raise RuntimeError(f'{path}: class PanReference not found')
    ns = {'nn': nn, 'F': F, 'torch': torch}
    exec(compile(ast.Module(body=cls, type_ignores=[]), path, 'exec'), ns)
    return ns['PanReference']


PanReference = load_pan_reference()


class IouHead(nn.Module):
    """RetinaNetHead plus a conv3x3 IoU logit per anchor on the regression tower."""

    def __init__(self, ch, anchors, classes, iou):
        super().__init__()
        self.head = RetinaNetHead(ch, anchors, classes)
        self.iou_pred = nn.Conv2d(ch, anchors, 3, 1, 1) if iou else None
        self.anchors = anchors

    def forward(self, feats):
        cls, box, ious = [], [], []
        for f in feats:
            n, _, h, w = f.shape
            c = self.head.classification_head.cls_logits(self.head.classification_head.conv(f))
            cls.append(c.view(n, self.anchors, -1, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, c.shape[1] // self.anchors))
            t = self.head.regression_head.conv(f)
            b = self.head.regression_head.bbox_reg(t)
            box.append(b.view(n, self.anchors, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4))
            if self.iou_pred is not None:
                i = self.iou_pred(t)
                ious.append(i.view(n, self.anchors, 1, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 1))
        return torch.cat(cls, 1), torch.cat(box, 1), (torch.cat(ious, 1) if ious else None)


class Thesis(nn.Module):
    def __init__(self, num_classes=1, ch=256, reduction=16):
        super().__init__()
        # returned_layers [1..4] gives C2..C5; trainable_layers 3 freezes conv1 and layer1 as resnet_fpn_backbone.
        ext = _resnet_fpn_extractor(resnet50(norm_layer=FrozenBatchNorm2d), 3, returned_layers=[1, 2, 3, 4],
                                    extra_blocks=None)
        self.body = ext.body
        self.fpn = FeaturePyramidNetwork([256, 512, 1024, 2048], ch)  # P2-P5, no extra levels
        self.pan = PanReference(ch, 4, attn=True, reduction=reduction)
        self.head = IouHead(ch, 9, num_classes, iou=True)

    def forward(self, x):
        ps = list(self.fpn(self.body(x)).values())
        return self.head(self.pan(ps))


class Baseline(nn.Module):
    def __init__(self, num_classes=1):
        super().__init__()
        self.backbone = _resnet_fpn_extractor(resnet50(norm_layer=FrozenBatchNorm2d), 3, returned_layers=[2, 3, 4],
                                              extra_blocks=LastLevelP6P7(256, 256))
        self.head = IouHead(256, 9, num_classes, iou=False)

    def forward(self, x):
        return self.head(list(self.backbone(x).values()))


def step_fn(model, size=512, batch=2, pos_frac=0.01):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9,
                          weight_decay=1e-4)
    x = torch.randn(batch, 3, size, size)
    model.train()

    def step():
        cls, box, iou = model(x)
        pos = torch.rand(cls.shape[:2]) < pos_frac
        npos = max(1, int(pos.sum()))
        cls_t = pos.unsqueeze(-1).to(cls.dtype).expand_as(cls)
        loss = sigmoid_focal_loss(cls, cls_t, reduction='sum') / npos
        loss = loss + F.l1_loss(box[pos], torch.rand(npos, 4) * 0.2, reduction='sum') / npos
        if iou is not None:
            loss = loss + F.binary_cross_entropy_with_logits(iou[pos][:, 0], torch.rand(npos), reduction='sum') / npos
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)

    return step


def infer_fn(model, size=512, batch=1):
    x = torch.randn(batch, 3, size, size)
    model.eval()

    def forward():
        with torch.no_grad():
            model(x)

    return forward


def median_ms(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1000)
    return statistics.median(ts), ts


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else 'thesis'
    iters = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 512
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    mode = sys.argv[5] if len(sys.argv) > 5 else 'train'
    torch.set_num_threads(2)
    torch.manual_seed(0)
    out = {'threads': torch.get_num_threads(), 'torch': torch.__version__, 'size': size, 'batch': batch,
           'mode': mode}
    for name in (['thesis', 'baseline'] if which == 'both' else [which]):
        model = Thesis() if name == 'thesis' else Baseline()
        fn = infer_fn(model, size, batch) if mode == 'infer' else step_fn(model, size, batch)
        ms, ts = median_ms(fn, warmup=1, iters=iters)
        out[name] = {'ms': ms, 'steps_ms': ts,
                     'params': sum(p.numel() for p in model.parameters()),
                     'trainable': sum(p.numel() for p in model.parameters() if p.requires_grad)}
    if which != 'both':
        out['ms'] = out[which]['ms']
    print(json.dumps(out))


if __name__ == '__main__':
    main()
