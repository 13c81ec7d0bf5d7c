#!/usr/bin/python3
"""torchvision's ResNet18 classifier trained like `bmc classify train`, for the side-by-side figure.

Reads the split a bmc run wrote (`<run>/split.json`: the same train / test images), cuts the same
crops (the whole single-cell image, centred square, resized to --crop-size), normalises with
ImageNet mean / std, class-balanced batches, random flips / quarter turns (no HED / colour
jitter: not in torchvision), AdamW (lr 2e-3, wd 1e-4), for the same wall-clock budget on the
same CPU threads. --width scales every channel count as bmc's --width does (round(64 * w) ...),
building the network from torchvision's own ResNet / BasicBlock / _make_layer, so both sides train
the same architecture; --width 1 is torchvision's resnet18 itself. Prints one JSON line: balanced
accuracy, macro-F1, steps, seconds.

Usage: /usr/bin/python3 tooling/classify_torchvision.py <bmc-run-dir> --minutes 3 [--crop-size 64] [--width 0.25]
"""
import argparse, json, os, random, time
import numpy as np
import torch, torchvision
from PIL import Image

ap = argparse.ArgumentParser()
ap.add_argument('run')
ap.add_argument('--minutes', type=float, default=3)
ap.add_argument('--crop-size', type=int, default=64)
ap.add_argument('--batch', type=int, default=32)
ap.add_argument('--threads', type=int, default=2)
ap.add_argument('--seed', type=int, default=1)
ap.add_argument('--width', type=float, default=1.0)
a = ap.parse_args()
torch.manual_seed(a.seed); random.seed(a.seed); np.random.seed(a.seed)
torch.set_num_threads(a.threads)
split = json.load(open(os.path.join(a.run, 'split.json')))
names = split['classNames']
MEAN = np.array([0.485, 0.456, 0.406], np.float32); STD = np.array([0.229, 0.224, 0.225], np.float32)

def load(files):
    xs, ys = [], []
    for f in files:
        im = Image.open(f).convert('RGB'); w, h = im.size; s = min(w, h)
        # The crop rule with margin 0 on the whole image: the centred square (side max(w, h) would pad; PBC images are ~square).
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((a.crop_size, a.crop_size), Image.BILINEAR)
        xs.append((np.asarray(im, np.float32) / 255 - MEAN) / STD)
        ys.append(names.index(os.path.basename(os.path.dirname(f))))
    return torch.tensor(np.stack(xs)).permute(0, 3, 1, 2).contiguous(), torch.tensor(ys)

t0 = time.time()
xtr, ytr = load(split['train']); xte, yte = load(split['test'])
read_s = time.time() - t0
def resnet18(k, width):
    if width == 1:
        return torchvision.models.resnet18(num_classes=k)
    # torchvision's ResNet.__init__ with every channel count scaled as @bmc/backbone scales it.
    from torchvision.models.resnet import ResNet, BasicBlock
    nn = torch.nn
    w = lambda c: max(1, round(c * width))
    m = ResNet.__new__(ResNet); nn.Module.__init__(m)
    m._norm_layer = nn.BatchNorm2d; m.dilation = 1; m.groups = 1; m.base_width = 64; m.inplanes = w(64)
    m.conv1 = nn.Conv2d(3, w(64), 7, 2, 3, bias=False); m.bn1 = nn.BatchNorm2d(w(64))
    m.relu = nn.ReLU(inplace=True); m.maxpool = nn.MaxPool2d(3, 2, 1)
    m.layer1 = m._make_layer(BasicBlock, w(64), 2); m.layer2 = m._make_layer(BasicBlock, w(128), 2, stride=2)
    m.layer3 = m._make_layer(BasicBlock, w(256), 2, stride=2); m.layer4 = m._make_layer(BasicBlock, w(512), 2, stride=2)
    m.avgpool = nn.AdaptiveAvgPool2d((1, 1)); m.fc = nn.Linear(w(512), k)
    for mod in m.modules():  # torchvision's init
        if isinstance(mod, nn.Conv2d): nn.init.kaiming_normal_(mod.weight, mode='fan_out', nonlinearity='relu')
        elif isinstance(mod, nn.BatchNorm2d): nn.init.constant_(mod.weight, 1); nn.init.constant_(mod.bias, 0)
    return m

model = resnet18(len(names), a.width)
params = sum(p.numel() for p in model.parameters())
opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
by_class = [torch.nonzero(ytr == c).flatten() for c in range(len(names))]
steps = 0; start = time.time(); model.train()
while time.time() - start < a.minutes * 60:
    cls = torch.randint(len(names), (a.batch,))
    idx = torch.stack([by_class[c][torch.randint(len(by_class[c]), (1,))][0] for c in cls])
    x = xtr[idx]
    if random.random() < 0.5: x = x.flip(3)
    x = torch.rot90(x, random.randint(0, 3), (2, 3))
    loss = torch.nn.functional.cross_entropy(model(x), ytr[idx])
    opt.zero_grad(); loss.backward(); opt.step(); steps += 1
train_s = time.time() - start
model.eval()
with torch.no_grad():
    pred = torch.cat([model(xte[i:i + 64]).argmax(1) for i in range(0, len(xte), 64)])
k = len(names); cm = np.zeros((k, k), int)
for t, p in zip(yte.tolist(), pred.tolist()): cm[t, p] += 1
rec = cm.diagonal() / np.maximum(cm.sum(1), 1); prec = cm.diagonal() / np.maximum(cm.sum(0), 1)
f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0)
print(json.dumps({'trainer': f'torchvision resnet18 blocks, width {a.width}', 'params': params, 'torch': torch.__version__, 'steps': steps,
                  'trainSeconds': round(train_s, 1), 'readSeconds': round(read_s, 1), 'balancedAccuracy': float(rec.mean()),
                  'macroF1': float(f1.mean()), 'accuracy': float(cm.diagonal().sum() / cm.sum()),
                  'perClassF1': dict(zip(names, map(float, f1)))}))
