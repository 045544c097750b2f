#!/usr/bin/env python3
"""Side-by-side table of one `cargo bench` run and one `peers.py` run, as Markdown.

Reads every criterion result under TARGET/criterion (`new/benchmark.json` + `new/estimates.json`,
median point estimates) and the peers' JSON, and prints the comparison tables of
docs/BENCHMARKS.md with ratios (hashguard time / peer time; < 1 means hashguard is faster).

Usage: python report.py [--criterion target/criterion] [--peers benches/peers/results.json]
                        [--json OUT]
"""

import argparse
import glob
import json
import os


def criterion_results(root):
    """{full benchmark id: median in milliseconds} of every benchmark criterion recorded."""
    out = {}
    for path in glob.glob(os.path.join(root, "**", "new", "benchmark.json"), recursive=True):
        with open(path) as f:
            bench = json.load(f)
        with open(os.path.join(os.path.dirname(path), "estimates.json")) as f:
            estimates = json.load(f)
        out[bench["full_id"]] = estimates["median"]["point_estimate"] / 1e6
    return out


def find(results, prefix, suffix):
    """The one result whose id starts with `prefix` (group, whose kernel part varies) and ends
    with `suffix`."""
    hits = [v for k, v in results.items() if k.startswith(prefix) and k.endswith(suffix)]
    return hits[0] if hits else None


def ratio(ours, theirs):
    return f"{ours / theirs:.2f}x" if ours and theirs else "n/a"


def ms(v):
    return f"{v:.3f}" if v is not None else "n/a"


def plot_fig6(ours, path):
    """The paper's Fig. 6 from this run: time per batch against batch size, retrieval alone
    and retrieval + UMCD, one panel per backend (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = (1, 4, 16, 64, 256)
    backends = [b for b in ("flex", "wgpu") if ours.get(f"umcd_fig6/{b}/retrieval/1")]
    fig, axes = plt.subplots(1, len(backends), figsize=(5 * len(backends), 4), squeeze=False)
    for ax, backend in zip(axes[0], backends):
        for kind, style in (("retrieval", "o-"), ("retrieval+umcd", "s--")):
            ax.plot(batches, [ours.get(f"umcd_fig6/{backend}/{kind}/{b}") for b in batches], style, label=kind)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("queries per batch")
        ax.set_ylabel("ms per batch (median)")
        ax.set_title(f"Fig. 6 analogue: {backend}, 64k-code database")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    parser.add_argument("--criterion", default=os.path.join(target, "criterion"))
    parser.add_argument("--peers", default="benches/peers/results.json")
    parser.add_argument("--json", help="also write the joined figures here")
    parser.add_argument("--plot", help="also plot Fig. 6 (time per batch vs batch size) as PNG here")
    args = parser.parse_args()
    ours = criterion_results(args.criterion)
    if not ours:
        raise SystemExit(f"no criterion results under {args.criterion}: run `cargo bench` first")
    if not os.path.isfile(args.peers):
        raise SystemExit(f"{args.peers} not found: run benches/peers/peers.py first")
    with open(args.peers) as f:
        peers = json.load(f)
    torch, faiss = peers["torch_cpu"], peers["faiss"]
    joined = {"hashguard_ms": ours, "peers": peers}

    print("| workload (batch 64, 28x28x1, 64 bits) | hashguard flex (ms) | PyTorch CPU (ms) | ratio (goal <= 1.5x) |")
    print("| --- | ---: | ---: | ---: |")
    for name in ("forward", "train_step", "pgd_step"):
        h = ours.get(f"network_b64/flex/{name}")
        print(f"| {name} | {ms(h)} | {ms(torch[name]['median_ms'])} | {ratio(h, torch[name]['median_ms'])} |")
    wgpu = {n: ours.get(f"network_b64/wgpu/{n}") for n in ("forward", "train_step", "pgd_step")}
    if any(wgpu.values()):
        print()
        print("| workload | hashguard wgpu (ms) |")
        print("| --- | ---: |")
        for n, v in wgpu.items():
            print(f"| {n} | {ms(v)} |")

    print()
    print("| top-100 search, 64-bit codes | hashguard (ms) | FAISS IndexBinaryFlat (ms) | throughput vs FAISS (goal >= 1.0x) |")
    print("| --- | ---: | ---: | ---: |")
    for label in ("10k", "100k", "1M"):
        h = find(ours, "hamming_top100/", f"1000q/{label}")
        f = faiss[f"top100_1000q_{label}"]["median_ms"]
        print(f"| 1,000 queries over {label} | {ms(h)} | {ms(f)} | {ratio(f, h)} |")
    h = find(ours, "hamming_top100/", "1q/1M")
    f = faiss["top100_1q_1M"]["median_ms"]
    print(f"| 1 query over 1M | {ms(h)} | {ms(f)} | {ratio(f, h)} |")

    print()
    print("| batch | retrieval (ms) | retrieval + UMCD (ms) | overhead (goal <= 1.3x at batch <= 16) |")
    print("| ---: | ---: | ---: | ---: |")
    for backend in ("flex", "wgpu"):
        for batch in (1, 4, 16, 64, 256):
            r = ours.get(f"umcd_fig6/{backend}/retrieval/{batch}")
            d = ours.get(f"umcd_fig6/{backend}/retrieval+umcd/{batch}")
            if r and d:
                print(f"| {batch} ({backend}) | {ms(r)} | {ms(d)} | {ratio(d, r)} |")

    print()
    print("| target codes | hashguard (ms) |")
    print("| --- | ---: |")
    for labels, n in (("single", 5000), ("single", 69000), ("multi", 69000)):
        for kind in ("centre", "mainstay"):
            v = ours.get(f"target_codes/cpu/{kind}/{labels}/{n}")
            print(f"| {kind}, {n:,} codes, {labels}-label | {ms(v)} |")

    if args.plot:
        plot_fig6(ours, args.plot)

    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(joined, f, indent=2, sort_keys=True)
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
