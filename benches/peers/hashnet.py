"""hashguard's default hashing network in PyTorch, shared by peers.py and attack_check.py.

Three stages of 2x [3x3 conv without bias, batch norm, ReLU] + 2x2 max-pool (widths 32/64/128),
2x2 adaptive average pool, a 512-unit hidden layer with ReLU and dropout 0.3, a `bits`-unit hash
layer; inputs are 28x28 grey images in [0, 1], normalised to [-1, 1] as hashguard does.
"""

import torch
import torch.nn as nn


def stage(c_in, c_out):
    layers = []
    for c in (c_in, c_out):
        layers += [nn.Conv2d(c, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
    return layers + [nn.MaxPool2d(2, 2)]


class HashNet(nn.Module):
    def __init__(self, bits=64):
        super().__init__()
        self.body = nn.Sequential(*stage(1, 32), *stage(32, 64), *stage(64, 128), nn.AdaptiveAvgPool2d(2))
        self.hidden = nn.Linear(128 * 4, 512)
        self.dropout = nn.Dropout(0.3)
        self.hash = nn.Linear(512, bits)

    def forward(self, x):
        x = self.body((x - 0.5) / 0.5).flatten(1)
        return self.hash(self.dropout(torch.relu(self.hidden(x))))
