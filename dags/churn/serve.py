"""serve: the stand-in for a model server, driven by vane's deploy task.

vane does not serve models; a rollout's stage commands tell the serving system
what to do. Here the "serving system" is a folder: one JSON file per stage
(shadow.json, canary.json, half.json, production.json) saying which model
version takes how much traffic.

  install  put the model in a stage with a share of the traffic
  measure  what monitoring would say after the soak time: latency (really
           measured, scoring the evaluation rows) and how many requests the
           stage has seen (`samples`), reported to $VANE_METRICS
  restore  put a model back in production and take every other stage down
"""

import argparse
import os
import sys
import time

sys.dont_write_bytecode = True  # keep dags/ free of __pycache__ folders
import common  # noqa: E402

STAGES = ["shadow", "canary", "half", "production"]


def install(args):
    os.makedirs(args.serving, exist_ok=True)
    entry = {
        "model": common.read_json(args.model),
        "version": os.environ.get("VANE_MODEL_VERSION", ""),
        "traffic_percent": args.traffic,
    }
    common.write_json(os.path.join(args.serving, f"{args.stage}.json"), entry)
    if args.stage == "production":
        for stage in STAGES[:-1]:
            path = os.path.join(args.serving, f"{stage}.json")
            if os.path.exists(path):
                os.remove(path)
    common.log(f"{args.stage}: version {entry['version'] or '?'} takes {args.traffic}% of traffic")


def measure(args):
    model = common.read_json(args.model)
    rows = common.read_csv(args.data)[:500]
    latencies = []
    for row in rows:
        start = time.perf_counter()
        common.predict_proba(model, row)
        latencies.append((time.perf_counter() - start) * 1000)
    latencies.sort()
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    common.metrics({"p95_latency_ms": round(p95, 4), "samples": args.samples})


def restore(args):
    os.makedirs(args.serving, exist_ok=True)
    entry = {
        "model": common.read_json(args.model),
        "version": os.environ.get("VANE_MODEL_VERSION", ""),
        "traffic_percent": 100,
    }
    common.write_json(os.path.join(args.serving, "production.json"), entry)
    for stage in STAGES[:-1]:
        path = os.path.join(args.serving, f"{stage}.json")
        if os.path.exists(path):
            os.remove(path)
    common.log(f"restored version {entry['version'] or '?'} to production; other stages taken down")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="step", required=True)
    i = sub.add_parser("install")
    i.add_argument("--stage", choices=STAGES, required=True)
    i.add_argument("--traffic", type=int, required=True)
    i.add_argument("--model", required=True)
    i.add_argument("--serving", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--model", required=True)
    m.add_argument("--data", required=True)
    m.add_argument("--samples", type=int, required=True)
    r = sub.add_parser("restore")
    r.add_argument("--model", required=True)
    r.add_argument("--serving", required=True)
    args = ap.parse_args()
    {"install": install, "measure": measure, "restore": restore}[args.step](args)


if __name__ == "__main__":
    main()
