#!/usr/bin/env python3
"""Checks a `hashguard export --format faiss` directory with NumPy and FAISS themselves.

1. Every array of manifest.json loads with NumPy, with the dtype and shape the manifest gives.
2. The database codes equal, bit for bit, the run's own `database.codes` (hashguard's file format,
   parsed here independently: magic, bits, count, little-endian u64 words per code).
3. `faiss.read_index_binary` loads `database.faiss`; its exact search returns the same top-10 as
   hashguard (`query_neighbours.npy` / `query_distances.npy`): equal distances, and the same items
   wherever the order is not a tie at the 10th distance (FAISS orders ties its own way).
4. Beyond exact search: a FAISS `IndexBinaryIVF` built from the exported codes, recall@10 against
   the exact neighbours (an item counts when its true distance is within the exact 10th distance)
   and time per query, for several nprobe.

Usage: python export_check.py EXPORT_DIR --codes RUN/database.codes [--out results.json]
"""

import argparse
import json
import os
import sys
import time

import faiss
import numpy as np


def load_hashguard_codes(path):
    """Codes of a hashguard `database.codes` file as rows of K/8 bytes, and K."""
    raw = open(path, "rb").read()
    if raw[:8] != b"HGCODES1":
        sys.exit(f"{path}: not a hashguard codes file")
    bits, count = np.frombuffer(raw[8:24], dtype="<u8")
    words = (int(bits) + 63) // 64
    data = np.frombuffer(raw[24:], dtype="<u8").reshape(int(count), words)
    rows = data.view(np.uint8).reshape(int(count), words * 8)[:, : int(bits) // 8]
    return rows, int(bits)


def popcount_distances(query, rows):
    """Hamming distances from one byte-row query to every byte row."""
    return np.unpackbits(np.bitwise_xor(rows, query), axis=1).sum(axis=1)


def check_arrays(export, manifest):
    arrays = {}
    for entry in manifest["arrays"]:
        a = np.load(os.path.join(export, entry["file"]))
        assert str(a.dtype) == entry["dtype"], (entry, a.dtype)
        assert list(a.shape) == entry["shape"], (entry, a.shape)
        arrays[entry["file"][: -len(".npy")]] = a
    return arrays


def check_exact(index, arrays, k):
    queries, db = arrays["query_codes"], arrays["database_codes"]
    distances, found = index.search(queries, k)
    ours_i, ours_d = arrays["query_neighbours"][:, :k], arrays["query_distances"][:, :k]
    assert np.array_equal(distances, ours_d), "FAISS's distances differ from hashguard's"
    same_order = 0
    for q in range(len(queries)):
        edge = ours_d[q, -1]
        inside_ours = set(ours_i[q][ours_d[q] < edge])
        inside_faiss = set(found[q][distances[q] < edge])
        assert inside_ours == inside_faiss, f"query {q}: different items before the last tie"
        true = popcount_distances(queries[q], db[found[q]])
        assert np.array_equal(true, distances[q]), f"query {q}: FAISS's items are not that close"
        same_order += int(np.array_equal(found[q], ours_i[q]))
    return {
        "queries": int(len(queries)),
        "k": k,
        "distances_equal": True,
        "items_equal_up_to_ties": True,
        "identical_lists": same_order,
    }


def ivf_recall(arrays, k, nprobes):
    queries, db = arrays["query_codes"], arrays["database_codes"]
    d = db.shape[1] * 8
    nlist = max(1, int(4 * np.sqrt(len(db))))
    quantizer = faiss.IndexBinaryFlat(d)
    ivf = faiss.IndexBinaryIVF(quantizer, d, nlist)
    start = time.perf_counter()
    ivf.train(db)
    ivf.add(db)
    build = time.perf_counter() - start
    edge = arrays["query_distances"][:, k - 1]
    flat = faiss.IndexBinaryFlat(d)
    flat.add(db)
    start = time.perf_counter()
    flat.search(queries, k)
    exact_ms = 1e3 * (time.perf_counter() - start) / len(queries)
    rows = []
    for nprobe in nprobes:
        ivf.nprobe = nprobe
        start = time.perf_counter()
        distances, found = ivf.search(queries, k)
        per_query_ms = 1e3 * (time.perf_counter() - start) / len(queries)
        hits = 0
        for q in range(len(queries)):
            valid = found[q] >= 0
            true = popcount_distances(queries[q], db[found[q][valid]])
            hits += int((true <= edge[q]).sum())
        rows.append(
            {
                "nprobe": nprobe,
                "recall_at_k": hits / (k * len(queries)),
                "ms_per_query": per_query_ms,
            }
        )
    return {
        "database": int(len(db)),
        "bits": d,
        "nlist": nlist,
        "build_seconds": build,
        "exact_ms_per_query": exact_ms,
        "rows": rows,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export")
    parser.add_argument("--codes", required=True, help="the run's database.codes")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out")
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)

    manifest = json.load(open(os.path.join(args.export, "manifest.json")))
    arrays = check_arrays(args.export, manifest)
    rows, bits = load_hashguard_codes(args.codes)
    assert bits == manifest["bits"], (bits, manifest["bits"])
    assert np.array_equal(rows, arrays["database_codes"]), "codes differ from database.codes"

    index = faiss.read_index_binary(os.path.join(args.export, manifest["faiss_index"]))
    assert index.ntotal == len(rows) and index.d == bits, (index.ntotal, index.d)
    exact = check_exact(index, arrays, args.k)
    ivf = ivf_recall(arrays, args.k, [1, 2, 4, 8, 16, 32, 64])

    result = {
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "arrays": {name: list(a.shape) for name, a in arrays.items()},
        "codes_bit_exact": True,
        "exact_search": exact,
        "ivf": ivf,
    }
    print(f"NumPy {np.__version__}: {len(arrays)} arrays as the manifest says; database codes "
          f"bit-exact with database.codes ({len(rows)} x {bits} bits)")
    print(f"FAISS {faiss.__version__} IndexBinaryFlat from database.faiss: top-{args.k} of "
          f"{exact['queries']} queries equal to hashguard's (distances equal; items equal up to "
          f"ties; {exact['identical_lists']} lists identical in order)")
    print(f"IndexBinaryIVF, nlist {ivf['nlist']} (built in {ivf['build_seconds']:.2f} s), "
          f"exact search {ivf['exact_ms_per_query']:.3f} ms/query, one thread:")
    print("| nprobe | recall@10 | ms / query |")
    print("| ---: | ---: | ---: |")
    for r in ivf["rows"]:
        print(f"| {r['nprobe']} | {r['recall_at_k']:.4f} | {r['ms_per_query']:.3f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
