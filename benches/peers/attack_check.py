#!/usr/bin/env python3
"""Independent PyTorch cross-check of the attack figures in docs/results.md.

Trains hashguard's default network (the same layers as peers.py) with the CSQ loss on
Fashion-MNIST from Debian's dataset-fashion-mnist (a random split of the 70,000 images into
1,000 queries, 5,000 training images and a 64,000-image database, like hashguard's default),
then attacks the queries with untargeted PGD (minimise tanh(z(x')).h(x)/K, signed steps,
projected on the L-inf ball and [0, 1]) and DHTA (maximise tanh(z(x')).a/K towards the
component vote a of 9 database codes of a class the query lacks), and prints mAP@all and
t-mAP. Nothing here shares code with hashguard: it answers whether a number is the data's or
hashguard's.

Usage: python attack_check.py [--epochs 30] [--eps 8,16] [--queries 1000] [--out FILE.json]
"""

import argparse
import gzip
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from hashnet import HashNet
from steps import hadamard

ROOT = "/usr/share/datasets/fashion-mnist"
BITS = 64


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load():
    x = np.concatenate([idx(f"{ROOT}/train-images-idx3-ubyte.gz"), idx(f"{ROOT}/t10k-images-idx3-ubyte.gz")])
    y = np.concatenate([idx(f"{ROOT}/train-labels-idx1-ubyte.gz"), idx(f"{ROOT}/t10k-labels-idx1-ubyte.gz")])
    return torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


def augment(x, gen):
    """Random shifts of up to 2 pixels (zero padding) and horizontal flips, per image."""
    n = x.shape[0]
    padded = F.pad(x, (2, 2, 2, 2))
    out = torch.empty_like(x)
    dx = torch.randint(0, 5, (n,), generator=gen)
    dy = torch.randint(0, 5, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    for i in range(n):
        img = padded[i, :, dy[i] : dy[i] + 28, dx[i] : dx[i] + 28]
        out[i] = torch.flip(img, [2]) if flip[i] else img
    return out


def train(model, x, y, centres, epochs, gen):
    optim = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    steps = epochs * ((len(x) + 63) // 64)
    warm = (len(x) + 63) // 64
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + np.cos(np.pi * (s - warm) / max(1, steps - warm)))
    )
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for b in range(0, len(x), 64):
            i = perm[b : b + 64]
            z = model(augment(x[i], gen))
            target = (centres[y[i]] + 1) / 2
            bce = (F.softplus(2 * z) - target * 2 * z).mean()
            quant = ((torch.tanh(z).abs() - 1) ** 2).mean()
            loss = bce + 1e-4 * quant
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            sched.step()
            total += loss.item() * len(i)
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}", flush=True)


@torch.no_grad()
def encode(model, x):
    model.eval()
    return torch.cat([torch.sign(model(x[b : b + 512])) for b in range(0, len(x), 512)])


def mean_ap(qcodes, qlabels, dcodes, dlabels):
    """mAP over the whole database ranked by Hamming distance (stable: ties by index)."""
    d = ((BITS - qcodes @ dcodes.T) / 2).numpy()
    aps = []
    for q in range(len(qcodes)):
        order = np.argsort(d[q], kind="stable")
        rel = (dlabels[order] == qlabels[q]).numpy()
        hits = np.cumsum(rel)
        n = rel.sum()
        aps.append(0.0 if n == 0 else float((hits[rel] / (np.nonzero(rel)[0] + 1)).sum() / n))
    return float(np.mean(aps))


def pgd(model, x, codes, sign, eps, step, steps):
    """sign = +1: untargeted (minimise f.h/K); -1: targeted (maximise f.a/K)."""
    lower, upper = (x - eps).clamp(min=0), (x + eps).clamp(max=1)
    xa = x.clone()
    for _ in range(steps):
        xa.requires_grad_(True)
        loss = sign * (torch.tanh(model(xa)) * codes).sum() / BITS
        (grad,) = torch.autograd.grad(loss, xa)
        xa = torch.min(torch.max(xa.detach() - step * grad.sign(), lower), upper)
    return xa.detach()


def attack_all(model, x, codes, sign, eps, step, steps):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return torch.cat([pgd(model, x[b : b + 64], codes[b : b + 64], sign, eps, step, steps) for b in range(0, len(x), 64)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--eps", default="8,16", help="budgets in 1/255 units, comma-separated")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)

    x, y = load()
    perm = torch.randperm(len(x), generator=gen)
    q, tr, db = perm[:1000], perm[1000:6000], perm[6000:]
    centres = torch.from_numpy(hadamard(BITS)[:10].astype(np.float32))
    # Row 0 of the Sylvester matrix is all ones; hashguard's centres are rows of [H; -H] too.
    model = HashNet(BITS)
    t = time.time()
    train(model, x[tr], y[tr], centres, args.epochs, gen)
    print(f"trained in {time.time() - t:.0f} s", flush=True)

    dcodes, dlabels = encode(model, x[db]), y[db]
    q = q[: args.queries]
    qx, qy = x[q], y[q]
    qcodes = encode(model, qx)
    out = {"epochs": args.epochs, "queries": len(q), "clean_map": mean_ap(qcodes, qy, dcodes, dlabels)}
    print(f"clean mAP@all {out['clean_map']:.4f}", flush=True)

    rng = np.random.default_rng(0)
    targets = torch.tensor([rng.choice([c for c in range(10) if c != int(l)]) for l in qy])
    anchors = []
    for t_ in targets:
        pool = torch.nonzero(dlabels == t_).flatten()
        pick = pool[torch.from_numpy(rng.choice(len(pool), 9, replace=False))]
        anchors.append(torch.sign(dcodes[pick].sum(0)))
    anchors = torch.stack(anchors)
    out["clean_t_map"] = mean_ap(qcodes, targets, dcodes, dlabels)

    for e in [int(v) for v in args.eps.split(",")]:
        eps, step = e / 255, max(1, e // 8) / 255
        t = time.time()
        adv = encode(model, attack_all(model, qx, qcodes, 1.0, eps, step, 100))
        flips = ((BITS - (adv * qcodes).sum(1)) / 2)
        out[f"pgd100_eps{e}"] = {
            "map": mean_ap(adv, qy, dcodes, dlabels),
            "success": float((flips > BITS / 2).float().mean()),
            "mean_flips": float(flips.mean()),
        }
        tadv = encode(model, attack_all(model, qx, anchors, -1.0, eps, step, 100))
        closer = ((tadv * anchors).sum(1) > (tadv * qcodes).sum(1)).float().mean()
        out[f"dhta100_eps{e}"] = {"t_map": mean_ap(tadv, targets, dcodes, dlabels), "success": float(closer)}
        print(f"eps {e}/255: {out[f'pgd100_eps{e}']} {out[f'dhta100_eps{e}']} ({time.time() - t:.0f} s)", flush=True)

    print(json.dumps(out, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
