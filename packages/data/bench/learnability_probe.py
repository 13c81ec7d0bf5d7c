# Learnability probe for the synthetic smears (run through bench/learnability.mjs): a tiny CenterNet
# trained from scratch on CPU for a wall-clock budget, then AP50 / AP75 on the held-out split.
import json, sys, time, math
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from PIL import Image
torch.set_num_threads(2); torch.manual_seed(0)
root = sys.argv[1]; budget = float(sys.argv[2])
def load(split):
    d = json.load(open(f'{root}/{split}.json'))
    anns = {}
    for a in d['annotations']: anns.setdefault(a['image_id'], []).append(a['bbox'])
    X, B = [], []
    for im in d['images']:
        X.append(np.asarray(Image.open(f"{root}/{im['file_name']}").convert('RGB'), dtype=np.float32) / 255)
        b = np.array(anns.get(im['id'], []), dtype=np.float32).reshape(-1, 4); b[:, 2:] += b[:, :2]; B.append(b)
    X = (np.stack(X) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    return torch.tensor(X, dtype=torch.float32).permute(0, 3, 1, 2).contiguous(), B
Xtr, Btr = load('train'); Xva, Bva = load('val')
S = 4; H = Xtr.shape[2] // S
def cbr(i, o, s=1, d=1): return nn.Sequential(nn.Conv2d(i, o, 3, s, d, d, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))
net = nn.Sequential(cbr(3, 24, 2), cbr(24, 48, 2), cbr(48, 64), cbr(64, 64, d=2), cbr(64, 64, d=2), cbr(64, 64, d=4), cbr(64, 64, d=1), nn.Conv2d(64, 5, 1))
net[-1].bias.data[0] = -2.2
def targets(boxes):
    hm = np.zeros((H, H), np.float32); wh = np.zeros((4, H, H), np.float32); m = np.zeros((H, H), np.float32)
    ys, xs = np.mgrid[0:H, 0:H]
    for x1, y1, x2, y2 in boxes:
        cx, cy = (x1 + x2) / 2 / S, (y1 + y2) / 2 / S; ix, iy = min(int(cx), H - 1), min(int(cy), H - 1)
        sig = max(0.5, min(x2 - x1, y2 - y1) / S / 6)
        hm = np.maximum(hm, np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sig * sig)))
        wh[:, iy, ix] = [(x2 - x1) / 32, (y2 - y1) / 32, cx - ix, cy - iy]; m[iy, ix] = 1
    return hm, wh, m
Ttr = [targets(b) for b in Btr]
HM = torch.tensor(np.stack([t[0] for t in Ttr]))[:, None]; WH = torch.tensor(np.stack([t[1] for t in Ttr])); M = torch.tensor(np.stack([t[2] for t in Ttr]))[:, None]
opt = torch.optim.Adam(net.parameters(), 2e-3)
t0 = time.time(); step = 0
while time.time() - t0 < budget:
    idx = torch.randint(0, len(Xtr), (16,)); x, hm, wh, m = Xtr[idx], HM[idx], WH[idx], M[idx]
    if torch.rand(()) < 0.5: x, hm, wh, m = x.flip(3), hm.flip(3), wh.flip(3), m.flip(3); wh = wh.clone(); wh[:, 2] = (1 - wh[:, 2]) * m[:, 0]  # offset mirrors
    out = net(x); p = out[:, :1].sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = hm.eq(1).float(); neg = 1 - pos
    fl = -(pos * (1 - p) ** 2 * p.log() + neg * (1 - hm) ** 4 * p ** 2 * (1 - p).log()).sum() / pos.sum().clamp(min=1)
    reg = (F.l1_loss(out[:, 1:], wh, reduction='none') * m).sum() / m.sum().clamp(min=1)
    loss = fl + reg; opt.zero_grad(); loss.backward(); opt.step(); step += 1
    if step % 100 == 0: print(f'step {step} t {time.time() - t0:.0f}s loss {loss.item():.3f}', flush=True)
net.eval(); dets = []
with torch.no_grad():
    out = torch.cat([net(Xva[i:i + 20]) for i in range(0, len(Xva), 20)])
    hm = out[:, 0].sigmoid(); keep = (hm == F.max_pool2d(hm[:, None], 3, 1, 1)[:, 0]) & (hm > 0.05)
    for n, y, x in keep.nonzero().tolist():
        w, h, ox, oy = out[n, 1:, y, x].tolist(); cx, cy = (x + ox) * S, (y + oy) * S; w, h = w * 32, h * 32
        dets.append((hm[n, y, x].item(), n, [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))
def iou(a, b):
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0])); ih = max(0, min(a[3], b[3]) - max(a[1], b[1])); i = iw * ih
    return i / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i)
for thr in (0.5, 0.75):
    used = [np.zeros(len(b), bool) for b in Bva]; tp = []
    for s, n, d in sorted(dets, key=lambda t: -t[0]):
        ious = [iou(d, g) for g in Bva[n]]; j = int(np.argmax(ious)) if ious else -1
        if j >= 0 and ious[j] >= thr and not used[n][j]: used[n][j] = True; tp.append(1)
        else: tp.append(0)
    tp = np.array(tp); ngt = sum(len(b) for b in Bva); ctp = np.cumsum(tp); rec = ctp / ngt; prec = ctp / np.arange(1, len(tp) + 1)
    mrec = np.concatenate([[0], rec, [1]]); mpre = np.concatenate([[0], prec, [0]])
    for i in range(len(mpre) - 2, -1, -1): mpre[i] = max(mpre[i], mpre[i + 1])
    ap = np.sum((mrec[1:] - mrec[:-1]) * mpre[1:])
    print(f'AP{int(thr * 100)} {ap:.3f}  recall {rec[-1] if len(rec) else 0:.3f}  gt {ngt}  steps {step}  {time.time() - t0:.0f}s')
