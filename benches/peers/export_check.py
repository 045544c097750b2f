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
   and time per query, for several nprobe; the same for USearch's HNSW over 1-bit vectors with
   the Hamming metric (when `usearch` is installed), and whether Milvus Lite takes binary vectors
   (when `pymilvus` and `milvus-lite` are).

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
        rows.append(
            {
                "nprobe": nprobe,
                "recall_at_k": recall(found, queries, db, edge),
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


def recall(found, queries, db, edge):
    """Share of the returned items whose true distance is within the exact k-th distance."""
    hits = 0
    for q in range(len(queries)):
        ids = found[q][found[q] >= 0].astype(np.int64)
        true = popcount_distances(queries[q], db[ids])
        hits += int((true <= edge[q]).sum())
    return hits / found.size


def hnsw_recall(arrays, k, expansions):
    """USearch HNSW over b1 vectors with the Hamming metric, or None without usearch."""
    try:
        from usearch.index import Index
    except ImportError:
        return None
    import usearch

    queries, db = arrays["query_codes"], arrays["database_codes"]
    edge = arrays["query_distances"][:, k - 1]
    rows = []
    for expansion in expansions:
        index = Index(ndim=db.shape[1] * 8, metric="hamming", dtype="b1",
                      expansion_add=expansion, expansion_search=expansion)
        start = time.perf_counter()
        index.add(np.arange(len(db)), db, threads=1)
        build = time.perf_counter() - start
        start = time.perf_counter()
        matches = index.search(queries, k, threads=1)
        per_query_ms = 1e3 * (time.perf_counter() - start) / len(queries)
        rows.append({
            "expansion": expansion,
            "build_seconds": build,
            "recall_at_k": recall(matches.keys, queries, db, edge),
            "ms_per_query": per_query_ms,
        })
    return {"usearch": usearch.__version__, "rows": rows}


def milvus_lite_probe(bits):
    """Whether Milvus Lite accepts a BINARY_VECTOR field (None without pymilvus/milvus-lite)."""
    try:
        import tempfile

        from pymilvus import DataType, MilvusClient
    except ImportError:
        return None
    import logging

    import pymilvus

    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        client = MilvusClient(os.path.join(tmp, "codes.db"))
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("code", DataType.BINARY_VECTOR, dim=bits)
        params = client.prepare_index_params()
        params.add_index(field_name="code", index_type="BIN_FLAT", metric_type="HAMMING")
        try:
            client.create_collection("codes", schema=schema, index_params=params)
            outcome = "accepted"
        except Exception as e:  # the client raises MilvusException for a refused schema
            outcome = f"refused: {str(e).splitlines()[0][:200]}"
        client.close()
    return {"pymilvus": pymilvus.__version__, "binary_vector": outcome}


def random_codes_baseline(arrays, k):
    """The same sizes with uniform random codes (no class structure, few ties): exact ground
    truth from FAISS's flat index, then the IVF and HNSW recall on them."""
    rng = np.random.default_rng(0)
    db = rng.integers(0, 256, size=arrays["database_codes"].shape, dtype=np.uint8)
    queries = rng.integers(0, 256, size=arrays["query_codes"].shape, dtype=np.uint8)
    flat = faiss.IndexBinaryFlat(db.shape[1] * 8)
    flat.add(db)
    distances, found = flat.search(queries, k)
    synthetic = {"database_codes": db, "query_codes": queries,
                 "query_distances": distances.astype(np.int32), "query_neighbours": found}
    return {
        "ivf": ivf_recall(synthetic, k, [1, 8, 64, 256]),
        "hnsw": hnsw_recall(synthetic, k, [16, 64, 128]),
    }


def print_table(title, rows, key):
    print(title)
    print(f"| {key} | recall@10 | ms / query |")
    print("| ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r[key]} | {r['recall_at_k']:.4f} | {r['ms_per_query']:.3f} |")


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
    hnsw = hnsw_recall(arrays, args.k, [16, 64, 128])
    milvus = milvus_lite_probe(bits)
    baseline = random_codes_baseline(arrays, args.k)
    edge = arrays["query_distances"][:, args.k - 1]

    result = {
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "arrays": {name: list(a.shape) for name, a in arrays.items()},
        "codes_bit_exact": True,
        "exact_search": exact,
        "queries_whose_kth_distance_is_0": int((edge == 0).sum()),
        "ivf": ivf,
        "hnsw": hnsw,
        "milvus_lite": milvus,
        "random_codes": baseline,
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
    print(f"queries whose exact {args.k}th neighbour is at distance 0 (ties make recall easier): "
          f"{result['queries_whose_kth_distance_is_0']} of {exact['queries']}")
    if hnsw:
        print(f"USearch {hnsw['usearch']} HNSW, b1 vectors, Hamming metric, one thread:")
        print("| expansion | build (s) | recall@10 | ms / query |")
        print("| ---: | ---: | ---: | ---: |")
        for r in hnsw["rows"]:
            print(f"| {r['expansion']} | {r['build_seconds']:.2f} | {r['recall_at_k']:.4f} | "
                  f"{r['ms_per_query']:.3f} |")
    print_table("Uniform random codes of the same sizes, IndexBinaryIVF:", baseline["ivf"]["rows"],
                "nprobe")
    if baseline["hnsw"]:
        print_table("Uniform random codes, USearch HNSW:", baseline["hnsw"]["rows"], "expansion")
    if milvus:
        print(f"Milvus Lite (pymilvus {milvus['pymilvus']}): BINARY_VECTOR {milvus['binary_vector']}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
