"""deploy: promote a model one stage: shadow -> canary -> production.

Each stage is a folder under the serving directory holding model.json and
metrics.json; every promotion appends one JSON line to history.jsonl.

  shadow      the candidate runs next to production without serving answers;
              here we measure how often it agrees with production on the
              day's customers, which is what an operator reads before going on.
  canary      the candidate serves a small slice of traffic. Refuses unless
              shadow holds this exact model (same sha256).
  production  refuses unless canary holds this exact model. The model being
              replaced is first kept as fallback/ so rollback.py can restore it.

Files are copied to a temporary name and renamed, so a serving process never
reads a half-copied model.
"""

import argparse
import datetime as dt
import json
import os
import shutil
import sys

sys.dont_write_bytecode = True  # keep dags/ free of __pycache__ folders
import common  # noqa: E402

STAGES = ["shadow", "canary", "production"]
TRAFFIC_PERCENT = {"shadow": 0, "canary": 5, "production": 100}


def install(src_dir, dst_dir):
    os.makedirs(dst_dir, exist_ok=True)
    for name in ("metrics.json", "model.json"):  # model last: its presence means "complete"
        src = os.path.join(src_dir, name)
        if os.path.exists(src):
            tmp = os.path.join(dst_dir, f".{name}.tmp-{os.getpid()}")
            shutil.copyfile(src, tmp)
            os.replace(tmp, os.path.join(dst_dir, name))


def stage_sha(serving, stage):
    path = os.path.join(serving, stage, "model.json")
    return common.sha256_file(path) if os.path.exists(path) else None


def append_history(serving, entry):
    entry["at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    os.makedirs(serving, exist_ok=True)
    with open(os.path.join(serving, "history.jsonl"), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")


def shadow_report(candidate, serving, data_path):
    prod_path = os.path.join(serving, "production", "model.json")
    if not os.path.exists(prod_path):
        common.log("shadow: no production model yet, nothing to compare against (first deployment)")
        return None
    production = common.read_json(prod_path)
    rows = common.read_csv(data_path)
    agree, diff = 0, 0.0
    for r in rows:
        pc, pp = common.predict_proba(candidate, r), common.predict_proba(production, r)
        agree += (pc >= 0.5) == (pp >= 0.5)
        diff += abs(pc - pp)
    rate = agree / len(rows)
    common.log(
        f"shadow: candidate agrees with production (trained on ds={production.get('ds')}) on "
        f"{rate:.1%} of {len(rows)} customers; mean |p_candidate - p_production| = {diff / len(rows):.3f}"
    )
    return round(rate, 4)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", required=True, choices=STAGES)
    ap.add_argument("--model-dir", required=True, help="folder with the candidate's model.json and metrics.json")
    ap.add_argument("--serving", required=True, help="serving folder, e.g. $VANE_WORK/serving/churn")
    ap.add_argument("--data", help="shadow only: labeled CSV to compare candidate and production on")
    args = ap.parse_args()

    model_path = os.path.join(args.model_dir, "model.json")
    candidate = common.read_json(model_path)
    metrics = common.read_json(os.path.join(args.model_dir, "metrics.json"))
    if not metrics.get("passed_gate"):
        common.fail(f"{args.model_dir} did not pass evaluation (passed_gate is false); refusing to deploy")
    sha = common.sha256_file(model_path)
    common.log(f"candidate {model_path} sha256={sha[:12]} accuracy={metrics['accuracy']} ds={candidate['ds']}")

    entry = {
        "stage": args.stage,
        "action": "deploy",
        "model_sha256": sha,
        "ds": candidate["ds"],
        "run_id": candidate.get("run_id", ""),
        "accuracy": metrics["accuracy"],
        "traffic_percent": TRAFFIC_PERCENT[args.stage],
    }

    if args.stage == "shadow" and args.data:
        entry["agreement_with_production"] = shadow_report(candidate, args.serving, args.data)

    if args.stage != "shadow":
        previous = STAGES[STAGES.index(args.stage) - 1]
        held = stage_sha(args.serving, previous)
        if held != sha:
            common.fail(
                f"{args.stage} needs this model in {previous} first; {previous} holds "
                f"{held[:12] if held else 'nothing'}, candidate is {sha[:12]}"
            )

    if args.stage == "production":
        current = stage_sha(args.serving, "production")
        if current is None:
            common.log("production: first deployment, no fallback to keep")
        elif current == sha:
            common.log("production: this model is already in production; fallback left unchanged")
        else:
            install(os.path.join(args.serving, "production"), os.path.join(args.serving, "fallback"))
            entry["fallback_sha256"] = current
            common.log(f"production: kept the outgoing model {current[:12]} as fallback/ (restore with rollback.py)")

    dst = os.path.join(args.serving, args.stage)
    install(args.model_dir, dst)
    append_history(args.serving, entry)
    common.log(f"{args.stage}: installed {sha[:12]} -> {dst}/model.json ({TRAFFIC_PERCENT[args.stage]}% of traffic)")


if __name__ == "__main__":
    main()
