"""rollback: put the previous production model back.

deploy.py (stage production) keeps the model it replaces in fallback/. This
script copies fallback/ over production/ and records the rollback in
history.jsonl. The DAG runs it when deploy_production fails (trigger_rule =
"one_failed"); run it by hand from the repository root when a freshly promoted
model misbehaves:

    python3 dags/churn/rollback.py                      # uses $VANE_WORK, else .vane/work
    python3 dags/churn/rollback.py --serving /path/to/serving/churn

Running it twice is harmless: the second time production already equals the
fallback and nothing changes.
"""

import argparse
import os
import sys

sys.dont_write_bytecode = True  # keep dags/ free of __pycache__ folders
import common  # noqa: E402
import deploy  # noqa: E402


def main():
    work = os.environ.get("VANE_WORK", os.path.join(".vane", "work"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--serving", default=os.path.join(work, "serving", "churn"))
    args = ap.parse_args()

    fallback = deploy.stage_sha(args.serving, "fallback")
    if fallback is None:
        common.fail(f"no fallback model in {args.serving}/fallback; nothing to roll back to")
    current = deploy.stage_sha(args.serving, "production")
    if current == fallback:
        common.log(f"production already runs the fallback model {fallback[:12]}; nothing to do")
        return

    restored = common.read_json(os.path.join(args.serving, "fallback", "model.json"))
    deploy.install(os.path.join(args.serving, "fallback"), os.path.join(args.serving, "production"))
    deploy.append_history(
        args.serving,
        {
            "stage": "production",
            "action": "rollback",
            "model_sha256": fallback,
            "replaced_sha256": current,
            "ds": restored.get("ds"),
            "run_id": restored.get("run_id", ""),
            "traffic_percent": 100,
        },
    )
    common.log(
        f"rolled back production: {current[:12] if current else 'nothing'} -> {fallback[:12]} "
        f"(model trained on ds={restored.get('ds')})"
    )


if __name__ == "__main__":
    main()
