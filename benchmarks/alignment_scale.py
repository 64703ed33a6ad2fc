"""Benchmark: every alignment metric at paper scale, from the on-disk cache, with bounded memory.

15 languages x 6,680 sentences (XNLI test's distinct premises and hypotheses) x 13 layers
(embedding output + 12) x 768 dimensions of random vectors, stored as the study stores them
(float16 ``.npy`` per language, read through memory maps). Prints wall time and peak resident
memory (the target is a peak under 4 GB).

    python benchmarks/alignment_scale.py [--sentences 6680] [--layers 13] [--dim 768]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xnli_study import alignment as al  # noqa: E402
from xnli_study.languages import XNLI_LANGUAGES  # noqa: E402


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is in KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=6680, help="sentences per language")
    parser.add_argument("--layers", type=int, default=13, help="layers including the embedding output")
    parser.add_argument("--dim", type=int, default=768, help="hidden size")
    parser.add_argument("--lid-sentences", type=int, default=2000,
                        help="sentences per language for the language-identity probe")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        shared = rng.standard_normal((args.layers, args.sentences, args.dim), dtype=np.float32)
        for i, lang in enumerate(XNLI_LANGUAGES):  # a shared signal plus a language offset and noise
            noise = rng.standard_normal(shared.shape, dtype=np.float32)
            offset = rng.standard_normal(args.dim, dtype=np.float32)
            np.save(folder / f"{lang}.npy", (shared + 1.5 * noise + 2 * offset).astype(np.float16))
            del noise
        del shared
        written = time.perf_counter() - started
        print(f"wrote {len(XNLI_LANGUAGES)} x {args.layers} x {args.sentences} x {args.dim} float16 "
              f"vectors in {written:.1f} s; peak memory so far {peak_rss_gb():.2f} GB", flush=True)

        started = time.perf_counter()
        emb = al.load_cached(folder, list(XNLI_LANGUAGES))
        pairwise = al.alignment_metrics(emb)
        pairwise_s = time.perf_counter() - started
        print(f"pairwise metrics ({len(pairwise)} values: 8 metrics x 14 languages x {args.layers} "
              f"layers): {pairwise_s:.1f} s; peak memory {peak_rss_gb():.2f} GB", flush=True)

        started = time.perf_counter()
        keep = np.sort(rng.permutation(args.sentences)[: args.lid_sentences])
        lid = al.language_id_by_layer(emb, layers=range(args.layers), rows=keep)
        lid_s = time.perf_counter() - started
        print(f"language-identity probe ({args.lid_sentences} sentences x 15 languages, 5 folds, "
              f"{args.layers} layers): {lid_s:.1f} s; peak memory {peak_rss_gb():.2f} GB", flush=True)

    retrieval = pairwise[pairwise["metric"] == "retrieval"]["value"].mean()
    print(f"check: mean retrieval {retrieval:.3f}, mean language-id accuracy {lid['value'].mean():.3f}")
    peak = peak_rss_gb()
    print(f"TOTAL {pairwise_s + lid_s:.1f} s of metrics; PEAK MEMORY {peak:.2f} GB "
          f"({'under' if peak < 4 else 'OVER'} the 4 GB target)")


if __name__ == "__main__":
    main()
