"""review: people check the labels of the customers the rule is least sure about.

Three steps, each its own task in churn_retrain:

  export    pick the day's most uncertain customers and hand them to annotators
  annotate  stands in for the annotation tool: two annotators label every item,
            after a delay; in production this is people, and vane just waits
  collect   read the labels back: how long they took (the feedback delay) and
            which labels both annotators agreed on

Agreement between the annotators is checked by vane itself (the check_labels
task, `agreement = {...}`), not here: a batch labeled carelessly fails there
and the labels are not used.
"""

import argparse
import datetime
import random
import sys
import time

sys.dont_write_bytecode = True  # keep dags/ free of __pycache__ folders
import common  # noqa: E402
import label  # noqa: E402

ANNOTATORS = ["ana", "bo", "chen", "dev"]


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def rule_risk(row):
    numeric = {k: float(v) if k.startswith("n_") or k == "tenure_days" else v for k, v in row.items() if v != ""}
    numeric.setdefault("tenure_days", 0.0)
    return label.risk(numeric)


def export(args):
    rows = [r for r in common.read_csv(args.labeled) if r["plan"] and r["tenure_days"]]
    rows.sort(key=lambda r: (abs(rule_risk(r) - label.THRESHOLD), r["customer_id"]))
    batch = rows[: args.size]
    stamp = now().isoformat(timespec="seconds")
    common.write_csv(
        args.out,
        [{**r, "exported_at": stamp} for r in batch],
        common.LABELED_COLUMNS + ["exported_at"],
    )
    common.log(f"exported {len(batch)} uncertain customers for review -> {args.out}")


def annotate(args):
    batch = common.read_csv(args.batch)
    time.sleep(args.delay)
    # Seeded by the batch itself, so the same day gets the same labels wherever it runs.
    rng = random.Random("review:" + ",".join(r["customer_id"] for r in batch))
    out = []
    for i, row in enumerate(batch):
        truth = 1 if rule_risk(row) > label.THRESHOLD else 0
        pair = [ANNOTATORS[i % 4], ANNOTATORS[(i + 1) % 4]]
        for who in pair:
            answer = truth if rng.random() >= args.noise else 1 - truth
            out.append(
                {
                    "item": row["customer_id"],
                    "annotator": who,
                    "label": answer,
                    "labeled_at": now().isoformat(timespec="seconds"),
                }
            )
    common.write_csv(args.out, out, ["item", "annotator", "label", "labeled_at"])
    common.log(f"{len(out)} labels from {len(ANNOTATORS)} annotators (noise {args.noise}) -> {args.out}")


def collect(args):
    batch = common.read_csv(args.batch)
    annotations = common.read_csv(args.annotations)
    exported = datetime.datetime.fromisoformat(batch[0]["exported_at"]) if batch else now()
    last = max((datetime.datetime.fromisoformat(a["labeled_at"]) for a in annotations), default=exported)
    by_item = {}
    for a in annotations:
        by_item.setdefault(a["item"], set()).add(int(a["label"]))
    agreed = [{"customer_id": item, "reviewed_label": labels.pop()} for item, labels in sorted(by_item.items()) if len(labels) == 1]
    common.write_csv(args.out, agreed, ["customer_id", "reviewed_label"])
    delay = (last - exported).total_seconds()
    numbers = {"items_labeled": len(by_item), "items_agreed": len(agreed)}
    if delay >= 0:
        numbers["feedback_delay_seconds"] = delay
        said = f"feedback delay {delay:.0f}s"
    else:
        # A rerun of the day exported the batch again after its labels came in: those labels
        # answered the earlier export, so this export has no delay to report (a negative or a
        # zero one would skew the series).
        said = "labels predate this export (a rerun of the day reused them); no feedback delay recorded"
    common.metrics(numbers)
    common.log(f"{len(agreed)} of {len(by_item)} items agreed; {said} -> {args.out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="step", required=True)
    e = sub.add_parser("export")
    e.add_argument("--labeled", required=True)
    e.add_argument("--size", type=int, default=120)
    e.add_argument("--out", required=True)
    a = sub.add_parser("annotate")
    a.add_argument("--batch", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--noise", type=float, default=0.05, help="chance an annotator gets an item wrong")
    a.add_argument("--delay", type=float, default=1.0, help="seconds before the labels arrive")
    c = sub.add_parser("collect")
    c.add_argument("--batch", required=True)
    c.add_argument("--annotations", required=True)
    c.add_argument("--out", required=True)
    args = ap.parse_args()
    {"export": export, "annotate": annotate, "collect": collect}[args.step](args)


if __name__ == "__main__":
    main()
