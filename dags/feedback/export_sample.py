"""export_sample: the predictions of one day that annotators should label.

Deterministic from the date, so a rerun asks for the same sample.
"""

import argparse
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shared"))
from pipeline_io import log, write_csv  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ds", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rng = random.Random(f"sample:{args.ds}")
    rows = []
    for i in range(args.size):
        score = rng.random()
        rows.append({"item_id": f"{args.ds}-{i:04d}", "score": f"{score:.4f}", "predicted": int(score >= 0.5)})
    write_csv(args.out, rows, ["item_id", "score", "predicted"])
    log(f"exported {len(rows)} predictions to label -> {args.out}")


if __name__ == "__main__":
    main()
