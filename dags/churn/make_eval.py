"""make_eval: the golden evaluation set every candidate and production model is scored on.

A fixed, labeled day of customers that no model trains on. Because it never
changes, its hash never changes either, so vane can compare a candidate's
accuracy with production's accuracy on the very same data; if this file were
rebuilt differently, vane would refuse the comparison and say so.
"""

import argparse
import sys

sys.dont_write_bytecode = True  # keep dags/ free of __pycache__ folders
import common  # noqa: E402
import ingest  # noqa: E402
import label  # noqa: E402

GOLDEN_DAY = "2025-12-31"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rows = label.label(ingest.generate(GOLDEN_DAY), GOLDEN_DAY)
    common.write_csv(args.out, rows, common.LABELED_COLUMNS)
    common.log(f"golden evaluation set: {len(rows)} customers of {GOLDEN_DAY} -> {args.out}")


if __name__ == "__main__":
    main()
