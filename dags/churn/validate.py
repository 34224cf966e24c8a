"""validate: decide whether the day's labeled data is fit to train on.

Runs every check, writes all results to a JSON report (also on failure, so the
report explains the failed run), then exits 1 if any check failed. A failed
validate stops the run: train, evaluate and the deploy tasks never start, and
the model in production stays the one that was there yesterday.
"""

import argparse
import csv
import math
import sys

sys.dont_write_bytecode = True  # keep dags/ free of __pycache__ folders
import common  # noqa: E402

KEY_COLUMNS = ["customer_id", "plan", "tenure_days", "amount", "churned"]
COUNT_COLUMNS = [
    "n_events",
    "n_logins",
    "n_page_views",
    "n_purchases",
    "n_support_tickets",
    "n_payment_failed",
    "n_downgrades",
    "n_cancel_requests",
]
# column -> (lowest allowed, highest allowed, is the upper bound inclusive)
BOUNDS = {
    "tenure_days": (0, 36_500, False),  # a customer older than 100 years is a unit bug
    "amount": (0, 100_000, True),
    **{col: (0, 10_000, True) for col in COUNT_COLUMNS},
}


class Checks:
    def __init__(self):
        self.results = []

    def add(self, name, ok, detail, column=None):
        self.results.append({"check": name, "column": column, "ok": ok, "detail": detail})
        common.log(f"{'ok  ' if ok else 'FAIL'} {name}{f' [{column}]' if column else ''}: {detail}")

    @property
    def failed(self):
        return [r for r in self.results if not r["ok"]]


def as_number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ds", required=True)
    ap.add_argument("--data", required=True, help="labeled CSV from the label task")
    ap.add_argument("--report", required=True, help="JSON report to write")
    ap.add_argument("--min-rows", type=int, default=500)
    ap.add_argument("--max-rows", type=int, default=5000)
    ap.add_argument("--min-positive-rate", type=float, default=0.05)
    ap.add_argument("--max-positive-rate", type=float, default=0.60)
    args = ap.parse_args()

    rows = common.read_csv(args.data)
    with open(args.data, newline="", encoding="utf-8") as fh:
        columns = next(csv.reader(fh), [])
    common.log(f"validating {len(rows)} rows x {len(columns)} columns from {args.data}")
    checks = Checks()

    missing = [c for c in common.LABELED_COLUMNS if c not in columns]
    checks.add("required_columns", not missing, f"missing {missing}" if missing else "all present")

    n = len(rows)
    checks.add(
        "row_count",
        args.min_rows <= n <= args.max_rows,
        f"{n} rows, expected between {args.min_rows} and {args.max_rows}",
    )

    if not missing:
        for col in KEY_COLUMNS:
            empty = [r for r in rows if (r[col] or "").strip() == ""]
            detail = f"{len(empty)} empty values"
            if empty:
                detail += f", e.g. customer_id={empty[0]['customer_id'] or '?'}; a key column must never be empty"
            checks.add("not_null", not empty, detail, column=col)

        ids = [r["customer_id"] for r in rows]
        dupes = len(ids) - len(set(ids))
        checks.add("unique_key", dupes == 0, f"{dupes} duplicate customer_id values", column="customer_id")

        for col, (low, high, high_inclusive) in BOUNDS.items():
            bad = []
            for r in rows:
                if (r[col] or "").strip() == "":
                    continue  # reported by not_null when it is a key column
                v = as_number(r[col])
                if v is None or v < low or (v > high if high_inclusive else v >= high):
                    bad.append((r[col], r["customer_id"]))
            bound = f"[{low}, {high}{']' if high_inclusive else ')'}"
            if bad:
                numeric = [b for b in bad if as_number(b[0]) is not None]
                worst = max(numeric, key=lambda b: abs(float(b[0]))) if numeric else bad[0]
                detail = (
                    f"{len(bad)} rows outside {bound}; worst value seen {worst[0]} "
                    f"(customer_id={worst[1]})"
                )
            else:
                detail = f"all values within {bound}"
            checks.add("range", not bad, detail, column=col)

        labels = {}
        for r in rows:
            labels[r["churned"]] = labels.get(r["churned"], 0) + 1
        odd = {k: v for k, v in labels.items() if k not in ("0", "1")}
        checks.add(
            "label_values",
            not odd,
            f"unexpected values {odd} (allowed: 0, 1)" if odd else f"counts {dict(sorted(labels.items()))}",
            column="churned",
        )

        rate = labels.get("1", 0) / n if n else 0.0
        checks.add(
            "class_balance",
            args.min_positive_rate <= rate <= args.max_positive_rate,
            f"positive rate {rate:.3f}, expected between {args.min_positive_rate} and {args.max_positive_rate}",
            column="churned",
        )

    failed = checks.failed
    common.write_json(
        args.report,
        {
            "ds": args.ds,
            "data": args.data,
            "rows": n,
            "passed": not failed,
            "checks": checks.results,
        },
    )
    common.log(f"report -> {args.report}")
    if failed:
        common.fail(
            f"{len(failed)} of {len(checks.results)} checks failed; refusing to train on ds={args.ds}:\n  "
            + "\n  ".join(f"{r['column'] or r['check']}: {r['detail']}" for r in failed)
        )
    common.log(f"all {len(checks.results)} checks passed")


if __name__ == "__main__":
    main()
