"""score: accuracy of the served predictions on the labels people gave."""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shared"))
from pipeline_io import fail, log, read_csv  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", required=True)
    ap.add_argument("--labels", required=True)
    args = ap.parse_args()
    predicted = {r["item_id"]: int(r["predicted"]) for r in read_csv(args.sample)}
    labels = read_csv(args.labels)
    if not labels:
        fail(f"{args.labels} holds no labels")
    missing = [r["item_id"] for r in labels if r["item_id"] not in predicted]
    if missing:
        fail(f"{len(missing)} labels for items that were not in the sample, e.g. {missing[0]}")
    right = sum(1 for r in labels if predicted[r["item_id"]] == int(r["label"]))
    log(f"accuracy on {len(labels)} human labels: {right / len(labels):.3f}")


if __name__ == "__main__":
    main()
