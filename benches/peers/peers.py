#!/usr/bin/env python3
"""Peer timings for docs/BENCHMARKS.md, on the same machine and data as `cargo bench`.

PyTorch CPU: the same hashing network as hashguard's default model (3 stages of 2x
[3x3 conv without bias, batch norm, ReLU] + 2x2 max-pool, widths 32/64/128, 2x2 adaptive
average pool, 512-unit hidden layer with ReLU and dropout 0.3, 64-bit hash layer), at batch 64
on 28x28 grey images: an inference forward pass, one CSQ training step (Adam, lr 1e-3, weight
decay 1e-4, loss read back) and one untargeted PGD step (loss f(x').h(x)/K, signed step 1/255,
clipped to the 8/255 ball and [0, 1]).

FAISS: IndexBinaryFlat top-100 over 10k / 100k / 1M 64-bit codes for 1,000 queries, and one
query over 1M. Codes and images come from SplitMix64 exactly as in benches/src/lib.rs, so both
sides search the same database with the same queries.

Usage: python peers.py [--out results.json] [--repeats 20]
"""

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    sys.exit("peers.py needs numpy, torch and faiss: pip install torch faiss-cpu numpy (in a venv)")

MASK = (1 << 64) - 1
BITS, BATCH, SIDE = 64, 64, 28


def splitmix64(seed, n):
    """The first n outputs of SplitMix64 seeded with `seed`, as uint64 (wrapping arithmetic)."""
    i = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def codes(seed, n):
    """n packed 64-bit codes as FAISS wants them: 8 bytes each (little-endian words)."""
    return splitmix64(seed, n).astype("<u8").view(np.uint8).reshape(n, 8)


def images(seed, n):
    """n 28x28 grey images in [0, 1): the top 24 bits of each output / 2^24."""
    v = (splitmix64(seed, n * SIDE * SIDE) >> np.uint64(40)).astype(np.float64) / float(1 << 24)
    return v.astype(np.float32).reshape(n, 1, SIDE, SIDE)


def timed(fn, repeats, warmup=5):
    """Median and spread of `repeats` calls of fn, in milliseconds, after `warmup` calls."""
    from steps import samples_ms

    samples = samples_ms(fn, repeats, warmup)
    return {
        "median_ms": statistics.median(samples),
        "min_ms": min(samples),
        "max_ms": max(samples),
        "samples": len(samples),
    }


def torch_peer(repeats, threads):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)

    from hashnet import HashNet
    from steps import csq_train_step, pgd_step

    model = HashNet(BITS)
    x = torch.from_numpy(images(7, BATCH))
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}

    model.eval()

    def forward():
        with torch.no_grad():
            return model(x).numpy()

    out["forward"] = timed(forward, repeats)

    # CSQ training step on hash centres (labels i % 10, rows of H), then a PGD step on the
    # eval-mode model.
    train_x = torch.from_numpy(images(8, BATCH))
    out["train_step"] = timed(csq_train_step(model, train_x, BITS), repeats)
    out["pgd_step"] = timed(pgd_step(model, x, BITS), repeats)
    return out


def faiss_peer(repeats, threads):
    import faiss

    faiss.omp_set_num_threads(threads)
    queries = codes(2, 1000)
    out = {"faiss": faiss.__version__, "threads": threads}
    for label, n in (("10k", 10_000), ("100k", 100_000), ("1M", 1_000_000)):
        index = faiss.IndexBinaryFlat(BITS)
        index.add(codes(1, n))
        out[f"top100_1000q_{label}"] = timed(lambda: index.search(queries, 100), max(5, repeats // 2), warmup=2)
    out["top100_1q_1M"] = timed(lambda: index.search(queries[:1], 100), repeats * 5)
    # The nearest distance of query 0, for cross-checking the data against hashguard's.
    d, _ = index.search(queries[:1], 100)
    out["query0_top100_distances"] = d[0].tolist()
    return out


def run_alone(peer, args):
    """Runs one peer in its own process: PyTorch and FAISS each bring an OpenMP runtime whose
    idle threads spin for a while, which would slow the other down in a shared process."""
    cmd = [sys.executable, __file__, "--peer", peer, "--repeats", str(args.repeats), "--threads", str(args.threads)]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benches/peers/results.json")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--peer", choices=["torch", "faiss"], help="run one peer, print its JSON")
    args = parser.parse_args()
    # The published first outputs of SplitMix64 for seed 0: the data generator is the same.
    assert splitmix64(0, 2).tolist() == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4]
    missing = [m for m in ("torch", "faiss") if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(f"peers.py needs {', '.join(missing)}: pip install torch faiss-cpu numpy (in a venv)")
    if args.peer:
        peer = torch_peer if args.peer == "torch" else faiss_peer
        json.dump(peer(args.repeats, args.threads), sys.stdout)
        return
    results = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "torch_cpu": run_alone("torch", args),
        "faiss": run_alone("faiss", args),
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=2)
    os.replace(tmp, args.out)
    for peer in ("torch_cpu", "faiss"):
        for name, value in results[peer].items():
            if isinstance(value, dict):
                print(f"{peer:9} {name:22} {value['median_ms']:10.3f} ms (median of {value['samples']})")


if __name__ == "__main__":
    main()
