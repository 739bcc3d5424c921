"""Progress reporting for jobs: `report_progress(0.4, "step 2 of 5")`."""

from __future__ import annotations

from datetime import UTC, datetime

from rq import get_current_job


def report_progress(done: float, message: str | None = None) -> dict | None:
    """Record how far the current job is, as a fraction (0..1) or a percent (1..100).

    The value is kept in the job's meta (so `GET /api/jobs/<id>` returns it) and published
    as a `progress` event. Outside a worker (a job function called directly) it does nothing.
    """
    job = get_current_job()
    if job is None:
        return None
    percent = done * 100 if 0 <= done <= 1 else done
    progress = {
        "percent": round(max(0.0, min(100.0, float(percent))), 2),
        "message": message,
        "at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    job.meta["progress"] = progress
    # The worker that runs the job installs the hook that saves meta and publishes the event
    # in one round trip; without it (plain RQ worker) the meta is still saved.
    hook = getattr(job, "progress_hook", None)
    if hook is not None:
        hook(job, progress)
    else:
        job.save_meta()
    return progress
