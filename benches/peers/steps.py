"""The PyTorch side of every timed comparison, defined once: Hadamard hash centres, one CSQ
training step and one untargeted PGD step exactly as hashguard's benches run them, and the
timer. peers.py, resnet18_steps.py and attack_check.py import these. The steps import torch
themselves, so the timer also serves the FAISS peer where torch is not installed."""

import time

import numpy as np


def hadamard(k):
    """Sylvester's k x k Hadamard matrix (k a power of two), as numpy floats."""
    h = np.array([[1.0]])
    while h.shape[0] < k:
        h = np.block([[h, h], [h, -h]])
    return h


def samples_ms(fn, repeats, warmup):
    """Milliseconds of each of `repeats` calls of fn, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def csq_train_step(model, x, bits):
    """A closure running one CSQ training step on the batch x in train mode: labels i % 10,
    centres the matching rows of H, BCE on (tanh z + 1) / 2 plus 1e-4 x quantisation, Adam
    (lr 1e-3, weight decay 1e-4); it reads the losses back as hashguard's step does."""
    import torch
    from torch import nn

    rows = [i % 10 for i in range(x.shape[0])]
    centres = torch.from_numpy(hadamard(bits)[rows].astype(np.float32))
    target = (centres + 1) / 2
    optim = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    model.train()

    def step():
        z = model(x)
        bce = (nn.functional.softplus(2 * z) - target * 2 * z).mean()
        quant = ((torch.tanh(z).abs() - 1) ** 2).mean()
        loss = bce + 1e-4 * quant
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        return loss.item(), bce.item(), quant.item()

    return step


def pgd_step(model, x, bits):
    """Puts model in eval mode with frozen parameters and returns a closure running one
    untargeted PGD step from the batch x: loss f(x').h(x)/K, signed step 1/255, clipped to the
    8/255 ball and [0, 1]; successive calls continue from the previous step's images."""
    import torch

    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        h = torch.sign(torch.tanh(model(x)))
    lower, upper = (x - 8 / 255).clamp(min=0), (x + 8 / 255).clamp(max=1)
    state = {"x": x.clone()}

    def step():
        xa = state["x"].clone().requires_grad_(True)
        loss = (torch.tanh(model(xa)) * h).sum() / bits
        (grad,) = torch.autograd.grad(loss, xa)
        with torch.no_grad():
            state["x"] = torch.min(torch.max(state["x"] - grad.sign() / 255, lower), upper)

    return step
