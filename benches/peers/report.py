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


def met(ok):
    return "met" if ok else "**missed**"


# Issue 22's goals: hashguard time / PyTorch CPU time on the same network and batch.
STEP_GOALS = {"forward": 1.0, "train_step": 1.2, "pgd_step": 1.1}
# Database sizes of the scaling table (benches/benchmarks/scaling.rs).
SIZES = (("10k", 10_000), ("100k", 100_000), ("1M", 1_000_000), ("10M", 10_000_000))


def scaling(ours):
    """Rows of the scaling table: per bit width and database size, the one-query search time,
    its scan rate (database bytes / time) against the faster of one-thread and all-core reads
    of a buffer as large as the database, and the 100-query batch's effective rate (query x
    database bytes / time: above the read bandwidth when blocks are reused from cache)."""
    # mbw's sense of bandwidth: the fastest read of the largest buffer (160 MB, far beyond the
    # caches), the bound for any scan that streams from memory.
    largest = max((int(k.split("/")[-1]), v) for k, v in ours.items() if k.startswith("membw/read/")) if any(
        k.startswith("membw/read/") for k in ours) else None
    if largest:
        size = largest[0]
        dram_ms = min(v for k, v in ours.items() if k.startswith("membw/read/") and k.split("/")[-1] == str(size))
        dram = size / dram_ms / 1e6
    else:
        dram = None
    rows = []
    for bits in (64, 128):
        for label, n in SIZES:
            size = n * bits // 8
            one = find(ours, "hamming_scale/", f"/{bits}b/1q/{label}")
            many = find(ours, "hamming_scale/", f"/{bits}b/100q/{label}")
            reads = [v for k, v in ours.items() if k.startswith("membw/read/") and k.split("/")[-1] == str(size)]
            bound = min(reads) if reads else None
            rows.append({
                "bits": bits, "database": label, "bytes": size, "one_query_ms": one,
                "hundred_queries_ms": many, "read_ms": bound,
                "one_query_gbps": size / one / 1e6 if one else None,
                "read_gbps": size / bound / 1e6 if bound else None,
                "of_bound": bound / one if one and bound else None,
                "batch_gbps": 100 * size / many / 1e6 if many else None,
                "dram_gbps": dram,
            })
    return rows


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

    print("| workload (batch 64, 28x28x1, 64 bits) | hashguard flex (ms) | PyTorch CPU (ms) | ratio | goal | met |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name in ("forward", "train_step", "pgd_step"):
        h = ours.get(f"network_b64/flex/{name}")
        t = torch[name]["median_ms"]
        goal = STEP_GOALS[name]
        print(f"| {name} | {ms(h)} | {ms(t)} | {ratio(h, t)} | <= {goal}x | {met(h and h / t <= goal)} |")
    wgpu = {n: ours.get(f"network_b64/wgpu/{n}") for n in ("forward", "train_step", "pgd_step")}
    if any(wgpu.values()):
        print()
        print("| workload | hashguard wgpu (ms) |")
        print("| --- | ---: |")
        for n, v in wgpu.items():
            print(f"| {n} | {ms(v)} |")

    print()
    print("| top-100 search, 64-bit codes | hashguard (ms) | FAISS IndexBinaryFlat (ms) | throughput vs FAISS | goal | met |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    searches = [(f"1,000 queries over {label}", f"1000q/{label}", f"top100_1000q_{label}") for label in ("10k", "100k", "1M")]
    for name, ours_id, faiss_id in searches + [("1 query over 1M", "1q/1M", "top100_1q_1M")]:
        h = find(ours, "hamming_top100/", ours_id)
        f = faiss[faiss_id]["median_ms"]
        print(f"| {name} | {ms(h)} | {ms(f)} | {ratio(f, h)} | >= 1.0x | {met(h and f / h >= 1.0)} |")

    print()
    print("| batch | retrieval (ms) | retrieval + UMCD (ms) | overhead | floor (2nd forward) | goal | met |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for backend in ("flex", "wgpu"):
        for batch in (1, 4, 16, 64, 256):
            r = ours.get(f"umcd_fig6/{backend}/retrieval/{batch}")
            d = ours.get(f"umcd_fig6/{backend}/retrieval+umcd/{batch}")
            e1 = ours.get(f"umcd_fig6/{backend}/encode/{batch}")
            e2 = ours.get(f"umcd_fig6/{backend}/encode2x/{batch}")
            floor = f"{(r + e2 - e1) / r:.2f}x" if r and e1 and e2 else "n/a"
            goal = "<= 1.3x" if batch <= 16 and backend == "flex" else ""
            ok = met(d / r <= 1.3) if goal and r and d else ""
            if r and d:
                print(f"| {batch} ({backend}) | {ms(r)} | {ms(d)} | {ratio(d, r)} | {floor} | {goal} | {ok} |")

    rows = scaling(ours)
    joined["scaling"] = rows
    if any(r["one_query_ms"] for r in rows):
        print()
        print(f"Memory bandwidth (mbw's sense: all-core read of a 160 MB buffer): {rows[0]['dram_gbps']:.1f} GB/s")
        print()
        print("| bits | database | 1 query (ms) | scan GB/s | same-size read GB/s | of it | of memory bw | 100 queries (ms) | batch GB/s | of memory bw | goal | met |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
        gb = lambda v: f"{v:.1f}" if v else "n/a"
        for r in rows:
            # Issue 22's bound is mbw-style memory bandwidth; the same-size read (from the caches
            # at 1M codes) is printed beside it as the stricter reference.
            goal = ">= 50% of memory bw at 1M" if r["database"] == "1M" else ""
            share = r["one_query_gbps"] / r["dram_gbps"] if r["one_query_gbps"] and r["dram_gbps"] else None
            ok = met(share is not None and share >= 0.5) if goal else ""
            pct = lambda v: f"{100 * v:.0f} %" if v else "n/a"
            of_mem = lambda v: pct(v / r["dram_gbps"]) if v and r["dram_gbps"] else "n/a"
            print(f"| {r['bits']} | {r['database']} | {ms(r['one_query_ms'])} | {gb(r['one_query_gbps'])} | "
                  f"{gb(r['read_gbps'])} | {pct(r['of_bound'])} | {of_mem(r['one_query_gbps'])} | {ms(r['hundred_queries_ms'])} | "
                  f"{gb(r['batch_gbps'])} | {of_mem(r['batch_gbps'])} | {goal} | {ok} |")
        print()
        print("| database (64 bits) | retrieval, 16 queries (ms) | retrieval + UMCD (ms) | overhead |")
        print("| ---: | ---: | ---: | ---: |")
        for label, _ in SIZES:
            r = ours.get(f"umcd_scale/flex/b16/retrieval/{label}")
            d = ours.get(f"umcd_scale/flex/b16/retrieval+umcd/{label}")
            if r and d:
                print(f"| {label} | {ms(r)} | {ms(d)} | {ratio(d, r)} |")

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
