"""Exports torchvision backbones with random weights for hashguard's weight-import parity check.

For each backbone it writes the model's `state_dict` (as torchvision saves it, the 1000-class
layer included) and the features PyTorch computes for one shared input: the pooled features of
ResNet, the output of the second 4096-wide layer (after its ReLU) of AlexNet and VGG, in eval
mode. Batch norm's affine parameters are randomised and its running statistics estimated from
random inputs (train-mode passes with a cumulative average), so the check covers them and the
activations keep the scale of a trained network (a fresh torchvision model has running mean 0,
variance 1, and its ResNet-50 features then grow into the thousands, where float32 rounding
alone exceeds 1e-4).

    python benches/peers/backbone_parity.py --out DIR                # full size, 224x224
    python benches/peers/backbone_parity.py --out DIR --narrow       # the CI fixture (< 5 MB)

`--narrow` builds the same layers with torchvision's own building blocks (ResNet's BasicBlock
and Bottleneck, VGG's make_layers) and every width divided by a per-backbone divisor, so the
key names are torchvision's and the files stay small. The Rust side
(`cargo run --release -p hashguard-benches --example backbone_parity -- DIR`, and the unit test
on the committed fixture) loads each file through `import_torchvision` and compares.

Files: DIR/manifest.json, DIR/input.f32 (little-endian float32, NCHW), and per backbone
DIR/<name>.pth (or .safetensors with --safetensors) and DIR/<name>.features.f32.
"""

import argparse
import json
import os
import time

import torch
from torch import nn
from torchvision import models
from torchvision.models import resnet as tv_resnet
from torchvision.models import vgg as tv_vgg

BACKBONES = ["alexnet", "vgg11", "vgg16", "resnet18", "resnet50"]
# Width divisors of the narrow fixture models (hashguard's `init_narrow`).
NARROW = {"alexnet": 16, "vgg11": 32, "vgg16": 32, "resnet18": 16, "resnet50": 16}
VGG_CFG = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class NarrowAlexNet(nn.Module):
    """torchvision's AlexNet layout (same module indices) with every width divided by d."""

    def __init__(self, d, num_classes=10):
        super().__init__()
        c = [64 // d, 192 // d, 384 // d, 256 // d, 256 // d]
        self.features = nn.Sequential(
            nn.Conv2d(3, c[0], 11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        w = 4096 // d
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(c[4] * 36, w), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(w, w), nn.ReLU(inplace=True),
            nn.Linear(w, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def narrow_vgg(name, d, num_classes=10):
    cfg = [v if v == "M" else v // d for v in VGG_CFG[name]]
    model = tv_vgg.VGG(tv_vgg.make_layers(cfg, batch_norm=False), num_classes=num_classes)
    w = 4096 // d
    model.classifier = nn.Sequential(
        nn.Linear(cfg[-2] * 49, w), nn.ReLU(True), nn.Dropout(0.5),
        nn.Linear(w, w), nn.ReLU(True), nn.Dropout(0.5),
        nn.Linear(w, num_classes),
    )
    return model


class NarrowResNet(nn.Module):
    """torchvision's ResNet (its BasicBlock/Bottleneck, same attribute names), base width 64/d."""

    def __init__(self, block, layers, d, num_classes=10):
        super().__init__()
        self.inplanes = 64 // d
        self.conv1 = nn.Conv2d(3, self.inplanes, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        for i, n in enumerate(layers):
            setattr(self, f"layer{i + 1}", self._make_layer(block, (64 // d) << i, n, 1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(((64 // d) << 3) * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build(name, narrow):
    if not narrow:
        return getattr(models, name)(weights=None)
    d = NARROW[name]
    if name == "alexnet":
        return NarrowAlexNet(d)
    if name.startswith("vgg"):
        return narrow_vgg(name, d)
    if name == "resnet18":
        return NarrowResNet(tv_resnet.BasicBlock, [2, 2, 2, 2], d)
    return NarrowResNet(tv_resnet.Bottleneck, [3, 4, 6, 3], d)


def randomise_batch_norm(model, gen, size):
    """Random affine parameters; running statistics averaged over random batches."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        return
    for m in norms:
        n = m.num_features
        m.weight.data = torch.rand(n, generator=gen) + 0.5
        m.bias.data = torch.randn(n, generator=gen) * 0.1
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(8, 3, size, size, generator=gen))
    for m in norms:
        m.momentum = 0.1
    model.eval()


def features(model, name, x):
    """The backbone's features: the model with its last layer replaced by the identity."""
    if name.startswith("resnet"):
        model.fc = nn.Identity()
    else:
        model.classifier[6] = nn.Identity()
    with torch.no_grad():
        return model(x)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--narrow", action="store_true", help="small fixture models")
    p.add_argument("--backbones", default=",".join(BACKBONES))
    p.add_argument("--size", type=int, help="input side (default 224, narrow 64)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--safetensors", action="store_true", help="write safetensors, not .pth")
    args = p.parse_args()
    size = args.size or (64 if args.narrow else 224)
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    torch.set_num_threads(os.cpu_count() or 1)
    x = torch.randn(args.batch, 3, size, size, generator=gen)
    x.numpy().astype("<f4").tofile(os.path.join(args.out, "input.f32"))
    manifest = {
        "torch": torch.__version__,
        "narrow": args.narrow,
        "input": {"file": "input.f32", "shape": list(x.shape)},
        "backbones": [],
    }
    for name in args.backbones.split(","):
        model = build(name, args.narrow).eval()
        randomise_batch_norm(model, gen, size)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        if args.safetensors:
            from safetensors.torch import save_file

            weights = f"{name}.safetensors"
            save_file(state, os.path.join(args.out, weights))
        else:
            weights = f"{name}.pth"
            torch.save(state, os.path.join(args.out, weights))
        start = time.perf_counter()
        f = features(model, name, x)
        seconds = time.perf_counter() - start
        f.numpy().astype("<f4").tofile(os.path.join(args.out, f"{name}.features.f32"))
        manifest["backbones"].append({
            "name": name,
            "weights": weights,
            "divisor": NARROW[name] if args.narrow else 1,
            "features": f"{name}.features.f32",
            "shape": list(f.shape),
            "parameters": sum(v.numel() for v in state.values()),
            "torch_forward_seconds": seconds,
        })
        print(f"{name}: {weights}, features {list(f.shape)}, forward {seconds:.3f} s")
    with open(os.path.join(args.out, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=2)


if __name__ == "__main__":
    main()
