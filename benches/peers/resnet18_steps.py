"""PyTorch CPU peer of hashguard's `resnet18_steps` example: torchvision's ResNet-18 with a
64-bit hash layer (ImageNet normalisation first, as hashguard's model does), batch 32 at
224x224, one CSQ training step (Adam, lr 1e-3, weight decay 1e-4, losses read back) and one
untargeted PGD step on the eval-mode network (loss f(x').h(x)/K, signed step 1/255, clipped to
the 8/255 ball and [0, 1]).

    python benches/peers/resnet18_steps.py [--batch 32] [--side 224] [--steps 5]
"""

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
from torch import nn
from torchvision import models


def hadamard(k):
    h = np.array([[1.0]])
    while h.shape[0] < k:
        h = np.block([[h, h], [h, -h]])
    return h


class Hashing(nn.Module):
    def __init__(self, bits=64):
        super().__init__()
        self.backbone = models.resnet18(weights=None)
        self.backbone.fc = nn.Linear(512, bits)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x):
        return self.backbone((x - self.mean) / self.std)


def timed(fn, steps):
    fn()
    out = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--side", type=int, default=224)
    p.add_argument("--steps", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    model = Hashing()
    x = torch.rand(a.batch, 3, a.side, a.side)
    centres = torch.from_numpy(hadamard(64)[[i % 10 for i in range(a.batch)]].astype(np.float32))
    target = (centres + 1) / 2
    optim = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    model.train()

    def train_step():
        z = model(x)
        bce = (nn.functional.softplus(2 * z) - target * 2 * z).mean()
        quant = ((torch.tanh(z).abs() - 1) ** 2).mean()
        loss = bce + 1e-4 * quant
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        return loss.item(), bce.item(), quant.item()

    train = timed(train_step, a.steps)
    model.eval()
    for q in model.parameters():
        q.requires_grad_(False)
    with torch.no_grad():
        h = torch.sign(torch.tanh(model(x)))
    lower, upper = (x - 8 / 255).clamp(min=0), (x + 8 / 255).clamp(max=1)
    state = {"x": x.clone()}

    def pgd_step():
        xa = state["x"].clone().requires_grad_(True)
        loss = (torch.tanh(model(xa)) * h).sum() / 64
        (grad,) = torch.autograd.grad(loss, xa)
        with torch.no_grad():
            state["x"] = torch.min(torch.max(state["x"] - grad.sign() / 255, lower), upper)

    pgd = timed(pgd_step, a.steps)
    print(json.dumps({
        "peer": "torch cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch": a.batch,
        "side": a.side,
        "train_step_ms": train,
        "train_step_median_ms": statistics.median(train),
        "pgd_step_ms": pgd,
        "pgd_step_median_ms": statistics.median(pgd),
    }))


if __name__ == "__main__":
    main()
