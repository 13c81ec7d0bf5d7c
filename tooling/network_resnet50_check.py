"""Full-size ResNet50: @bmc/backbone (tfjs) vs torchvision on one real image.

Not run in CI. From the repo root, after `pnpm --filter @bmc/backbone build`:
    /usr/bin/python3 tooling/network_resnet50_check.py [image.jpg]

torchvision's resnet50 with random weights (kaiming init) and randomised BatchNorm statistics
(eval mode) is saved as safetensors in /tmp (not committed), together with the ImageNet-normalised
image and torch's C2..C5; packages/backbone/bench/resnet50-check.mjs loads the weights through
importResNetSafetensors, runs the tfjs model and prints the max differences.
"""
import json
import os
import struct
import subprocess
import sys

import torch
import torchvision
from torchvision.io import ImageReadMode, read_image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
OUT = '/tmp/bmc_resnet50_check'
image_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    ROOT, '..', 'shared', 'data', 'bccd', 'JPEGImages', 'BloodImage_00000.jpg')
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        if t.dtype == torch.int64:
            dtype, raw = 'I64', t.numpy().astype('<i8').tobytes()
        else:
            dtype, raw = 'F32', t.float().numpy().astype('<f4').tobytes()
        header[name] = {'dtype': dtype, 'shape': list(t.shape), 'data_offsets': [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path + '.tmp', 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))
    os.replace(path + '.tmp', path)


net = torchvision.models.resnet50()
for m in net.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
        c = m.num_features
        with torch.no_grad():
            m.weight.copy_(torch.rand(c) * 0.5 + 0.5)
            m.bias.copy_(torch.randn(c) * 0.1)
            m.running_mean.copy_(torch.randn(c) * 0.1)
            m.running_var.copy_(torch.rand(c) * 0.5 + 0.75)
net.eval()
write_safetensors(os.path.join(OUT, 'resnet50.safetensors'), net.state_dict())

img = read_image(image_path, ImageReadMode.RGB).float() / 255.0
mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
x = ((img - mean) / std)[None]
with torch.no_grad():
    h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    feats = []
    for layer in [net.layer1, net.layer2, net.layer3, net.layer4]:
        h = layer(h)
        feats.append(h)
meta = {'image': os.path.relpath(image_path, ROOT), 'input': list(x.permute(0, 2, 3, 1).shape), 'features': []}
x.permute(0, 2, 3, 1).contiguous().numpy().astype('<f4').tofile(os.path.join(OUT, 'input.f32'))
for i, f in enumerate(feats):
    nhwc = f.permute(0, 2, 3, 1).contiguous()
    nhwc.numpy().astype('<f4').tofile(os.path.join(OUT, f'c{i + 2}.f32'))
    meta['features'].append(list(nhwc.shape))
with open(os.path.join(OUT, 'meta.json'), 'w') as fh:
    json.dump(meta, fh)
print(f'torch {torch.__version__}, torchvision {torchvision.__version__}: wrote {OUT}')
r = subprocess.run(['node', os.path.join(ROOT, 'packages', 'backbone', 'bench', 'resnet50-check.mjs'), OUT])
sys.exit(r.returncode)
