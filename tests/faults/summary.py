"""Summarise the figures the fault suite wrote to var/faults/*.json as RELIABILITY.md rows.

.venv/bin/python -m tests.faults.summary
"""

from __future__ import annotations

import json
import statistics

from tests.faults.faultkit import RESULTS_DIR


def main() -> None:
    for path in sorted(RESULTS_DIR.glob("*.json")):
        runs = json.loads(path.read_text())
        jobs = sum(run.get("jobs", 0) for run in runs)
        lost = sum(run.get("lost", 0) for run in runs)
        duplicated = sum(run.get("duplicated", 0) for run in runs)
        line = f"{path.stem}: runs={len(runs)} jobs={jobs} lost={lost} duplicated={duplicated}"
        for key in sorted(runs[-1]):
            values = [run[key] for run in runs if isinstance(run.get(key), int | float) and key not in ("runs",)]
            counted = ("kills", "orphans_requeued", "retried_attempts", "failed_with_reason", "refused_503")
            if "seconds" in key or key in counted:
                if values:
                    line += f" {key}: median {statistics.median(values):g} max {max(values):g}"
        print(line)


if __name__ == "__main__":
    main()
