"""annotate: stands in for human annotators labeling the sample.

The "truth" agrees with confident predictions and is a coin flip near the boundary,
so the measured accuracy looks like a real model's.
"""

import argparse
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shared"))
from pipeline_io import log, read_csv, write_csv  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rows = read_csv(args.sample)
    labels = []
    for row in rows:
        rng = random.Random(f"label:{row['item_id']}")
        score = float(row["score"])
        confident = abs(score - 0.5) > 0.2
        label = int(score >= 0.5) if confident or rng.random() < 0.5 else int(score < 0.5)
        labels.append({"item_id": row["item_id"], "label": label})
    write_csv(args.out, labels, ["item_id", "label"])
    log(f"annotators labeled {len(labels)} items -> {args.out}")


if __name__ == "__main__":
    main()
