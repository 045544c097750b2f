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

import torch
from torch import nn
from torchvision import models

from steps import csq_train_step, pgd_step, samples_ms


class Hashing(nn.Module):
    def __init__(self, bits=64):
        super().__init__()
        self.backbone = models.resnet18(weights=None)
        self.backbone.fc = nn.Linear(512, bits)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x):
        return self.backbone((x - self.mean) / self.std)


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
    train = samples_ms(csq_train_step(model, x, 64), a.steps, warmup=1)
    pgd = samples_ms(pgd_step(model, x, 64), a.steps, warmup=1)
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
