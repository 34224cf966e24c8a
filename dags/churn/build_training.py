"""build_training: the day's labeled customers, with the labels people reviewed.

A reviewed label (both annotators agreed) replaces the rule's label for that
customer; everyone else keeps the rule's label.
"""

import argparse
import sys

sys.dont_write_bytecode = True  # keep dags/ free of __pycache__ folders
import common  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labeled", required=True)
    ap.add_argument("--reviewed", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    reviewed = {r["customer_id"]: r["reviewed_label"] for r in common.read_csv(args.reviewed)}
    rows = common.read_csv(args.labeled)
    changed = 0
    for row in rows:
        label = reviewed.get(row["customer_id"])
        if label is not None and label != row["churned"]:
            row["churned"] = label
            changed += 1
    common.write_csv(args.out, rows, common.LABELED_COLUMNS)
    common.metrics({"training_rows": len(rows), "labels_corrected": changed})


if __name__ == "__main__":
    main()
