"""Service settings: one table of names, defaults and parsers, read from the environment.

Every setting can be given as an environment variable of the same name; the README's
configuration table lists them all. `configure(app)` loads them into `app.config`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    parse: Callable[[str], Any]
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("REDIS_URL", "redis://127.0.0.1:6379/0", str, "Redis the web and workers share."),
    Setting("REDIS_CONNECT_TIMEOUT", 0.5, float, "Seconds to wait for a new Redis connection."),
    Setting("REDIS_SOCKET_TIMEOUT", 0.5, float, "Seconds the web waits for a Redis reply before answering 503."),
    Setting("REDIS_MAX_CONNECTIONS", 500, int, "Connection pool size per process."),
    Setting("SECRET_KEY", None, str, "Signs sign-in sessions; unset: a random one kept in Redis, shared by all."),
    Setting("QUEUES", ["high", "default", "low"], _csv, "Queues, highest priority first."),
    Setting("DEFAULT_QUEUE", "default", str, "Queue used when a submission names none."),
    Setting("JOB_TIMEOUT", 180, int, "Seconds a job may run before it is failed."),
    Setting("RESULT_TTL", 86400, int, "Seconds a finished job and its result are kept."),
    Setting("FAILURE_TTL", 604800, int, "Seconds a failed job is kept."),
    Setting("MAX_CONTENT_LENGTH", 65536, int, "Largest request body accepted, in bytes."),
    Setting("EVENTS_CHANNEL", None, str, "Pub/sub channel of job notifications (unset: the default, see README)."),
    Setting("EVENTS_STREAM_MAXLEN", 10000, int, "Events kept in the global event stream."),
    Setting("JOB_EVENTS_MAXLEN", 1000, int, "Events kept per job (about; the oldest go first)."),
    Setting("HEARTBEAT_INTERVAL", 15.0, float, "Seconds between keep-alive comments on an idle event stream."),
    Setting("SSE_POLL_INTERVAL", 5.0, float, "Seconds between an event stream's safety re-reads of Redis."),
    Setting("SSE_RETRY_MS", 2000, int, "Reconnect delay (ms) event streams ask browsers to use."),
    Setting("SSE_REDIS_CONNECTIONS", 8, int, "Redis connections one web process's event streams share."),
    Setting("DEMO_CHANNEL", "task:pubsub:channel", str, "Pub/sub channel of the /pubsub demo."),
    Setting("RQ_DASHBOARD_USERNAME", "admin", str, "User name for the dashboard at /rq."),
    Setting("RQ_DASHBOARD_PASSWORD", None, str, "Dashboard password; /rq refuses all when unset."),
    Setting("RQ_DASHBOARD_READ_ONLY", False, _bool, "When true, /rq refuses every state-changing request."),
    Setting("TRUSTED_PROXIES", 0, int, "Reverse proxies in front of the web (X-Forwarded-For/-Proto/-Host hops)."),
    Setting("WORKER_PROCESSES", 1, int, "Job-running processes each `worker.py` supervises."),
    Setting("WORKER_SHUTDOWN_GRACE", 25.0, float, "Seconds a stopping worker lets its job finish."),
    Setting("WORKER_THREADS", 1, int, "Jobs each worker process runs at once, in threads (for I/O-bound jobs)."),
    Setting("WORKER_ISOLATED_QUEUES", [], _csv, "Queues whose jobs each run in a forked child process."),
    Setting("WORKER_WAKE_TIMEOUT", 1.0, float, "Longest an idle worker waits before looking at its queues."),
    Setting(
        "WORKER_ALLOWED_PREFIXES",
        [],
        _csv,
        "Dotted-path prefixes of functions workers run besides the allow-list (plain-RQ producers); risky.",
    ),
    Setting("LOG_LEVEL", "INFO", str, "Log level of the web and worker processes."),
    # Per-job options: what a client may ask for is capped by these maxima.
    Setting("MAX_JOB_TIMEOUT", 7200, int, "Largest `timeout` a submission may ask for, in seconds."),
    Setting("MAX_RESULT_TTL", 604800, int, "Largest `result_ttl` a submission may ask for, in seconds."),
    Setting("MAX_FAILURE_TTL", 2592000, int, "Largest `failure_ttl` a submission may ask for, in seconds."),
    Setting("MAX_JOB_TTL", 604800, int, "Largest `ttl` (time allowed in the queue), in seconds."),
    Setting("MAX_RETRIES", 10, int, "Largest `retry.max` a submission may ask for."),
    Setting("MAX_RETRY_INTERVAL", 3600, int, "Largest retry interval, backoff base and max_delay, in seconds."),
    Setting("MAX_ENQUEUE_IN", 2592000, int, "Largest `enqueue_in` (a delay before the job runs), in seconds."),
    Setting("MAX_DEPENDENCIES", 20, int, "Most jobs a submission may depend on."),
    Setting("MAX_BATCH", 100, int, "Most jobs in one `POST /api/jobs/batch`."),
    Setting("MAX_ARGS_BYTES", 16384, int, "Largest size of a job's arguments as JSON, in bytes."),
    Setting("IDEMPOTENCY_TTL", 86400, int, "Seconds an `Idempotency-Key` is remembered."),
    Setting("SUBMIT_RATE_LIMIT", "", str, "Submissions per client, e.g. `100/second`, `1000/minute`; empty = off."),
    Setting("MAX_QUEUE_DEPTH", 0, int, "Refuse submissions (503) to a queue holding this many jobs; 0 = no cap."),
    Setting("API_KEYS", "", str, "`name:key` or `name:sha256:<hex>` pairs, comma-separated; empty = open API."),
    Setting("ADMIN_API_KEYS", "", str, "Same form as API_KEYS; these keys see and manage every job."),
    # Sign-in, roles, audit log, charts (README: "Sign-in and roles", "Audit log", "Overview charts").
    Setting("VIEWER_API_KEYS", "", str, "Same form as API_KEYS; read-only keys: they see everything, change nothing."),
    Setting("SESSION_LIFETIME", 43200, int, "Seconds a web UI sign-in lasts (then sign in again)."),
    Setting("AUTH_FAILURES_PER_MINUTE", 20, int, "Refused keys or passwords per client and minute, then 429; 0 = off."),
    Setting("AUDIT_RETENTION", 7776000, int, "Seconds audit log entries are kept (default 90 days)."),
    Setting("AUDIT_MAXLEN", 100000, int, "Most audit log entries kept, whatever their age."),
    Setting("AUDIT_REFUSALS_PER_MINUTE", 30, int, "Refused requests recorded per caller per minute; 0 = all."),
    Setting("STATS_SAMPLE_INTERVAL", 10.0, float, "Seconds between samples of queue depth, oldest age and workers."),
    Setting("SCHEDULER_INTERVAL", 0.5, float, "Seconds between checks for due scheduled jobs (in `worker.py`)."),
    Setting("LOG_FORMAT", "text", str, "`text`, or `json` for one JSON object per log line (with job_id)."),
    Setting("DEFAULT_JOB_RETRIES", 1, int, "Re-runs a job gets after its worker dies or it raises (0: none)."),
    Setting("ABANDON_AFTER", 10.0, float, "Seconds without a worker's heartbeat before its jobs are recovered."),
    Setting("RECOVERY_INTERVAL", 2.0, float, "Seconds between two passes of the reaper (in every worker.py)."),
    Setting("JOB_KILL_GRACE", 10.0, float, "Seconds past its timeout before a job that ignores it is killed."),
    Setting("WORKER_REDIS_PATIENCE", 120.0, float, "Seconds a worker retries saving a job's end while Redis is down."),
    Setting("REQUIRE_DURABLE_REDIS", False, _bool, "Refuse to start on a Redis that may lose jobs (production)."),
    Setting("REDIS_SENTINEL_HOSTS", [], _csv, "Sentinels `host:port,...`; when set, the master comes from them."),
    Setting("REDIS_SENTINEL_MASTER", "mymaster", str, "Name of the master the sentinels watch."),
    Setting("REDIS_SENTINEL_PASSWORD", None, str, "Password of the sentinels themselves, if any."),
    Setting("LISTING_SCAN_FACTOR", 10, int, "GET /api/jobs reads at most this many index entries per job asked for."),
    Setting("BULK_PAGE_SIZE", 500, int, "Jobs a bulk action reads and acts on per step (one pipelined page)."),
    Setting("BULK_TIME_BUDGET", 5.0, float, "Seconds one POST /api/jobs/bulk works before answering with a cursor."),
    # Periodic schedules (README, "Periodic jobs").
    Setting("SCHEDULE_MISFIRE_GRACE", 60.0, float, "Seconds late a schedule's tick may still run (later: missed)."),
    Setting("SCHEDULE_HISTORY", 50, int, "Runs and skips kept per schedule."),
    Setting("SCHEDULE_POLL_INTERVAL", 1.0, float, "Longest a `worker.py` ticker waits between looks at due schedules."),
    Setting("MAX_SCHEDULES", 1000, int, "Most schedules the service keeps (POST /api/schedules answers 409 beyond)."),
    # Webhooks (webapp/service/webhooks.py, README "Webhooks").
    Setting("WEBHOOK_ALLOWED_HOSTS", [], _csv, "Webhook hosts allowed: `a.example.com`, `*.example.com`; empty = off."),
    Setting("WEBHOOK_SECRETS", "", str, "`name:secret` per API key name (`*`: any other caller), comma-separated."),
    Setting("WEBHOOK_TIMEOUT", 10.0, float, "Seconds one delivery attempt may take in all (connect, send, answer)."),
    Setting("WEBHOOK_RETRY_WINDOW", 86400.0, float, "Seconds a delivery is retried (with backoff) before it fails."),
    Setting("WEBHOOK_BACKOFF", 2.0, float, "Seconds before the first retry of a delivery; doubled each time."),
    Setting("WEBHOOK_MAX_BACKOFF", 3600.0, float, "Longest wait between two attempts of a delivery, in seconds."),
    Setting("WEBHOOK_CONCURRENCY", 8, int, "Deliveries in flight at once per `worker.py` (at most half to one host)."),
    Setting("WEBHOOK_LOG_TTL", 604800, int, "Seconds a delivery and its attempts are kept after it ends."),
    Setting("TRACING", "auto", str, "`auto`: OpenTelemetry spans when opentelemetry-api is installed; `off`: never."),
)


def from_environ(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return every setting, taken from `environ` where set and from its default otherwise."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.name)
        if raw is None or raw == "":
            values[setting.name] = setting.default
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as exc:
            raise ValueError(f"environment variable {setting.name}={raw!r} is invalid: {exc}") from exc
    return values


def configure(app, test_config: Mapping[str, Any] | None = None) -> None:
    """Settings from the environment, then the test's overrides; a random SECRET_KEY if none."""
    app.config.update(from_environ())
    if test_config:
        app.config.update(test_config)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = secrets.token_hex(32)
        # Sign-in sessions then share a random secret kept in Redis (webapp/web/sessions.py).
        app.config["SECRET_KEY_GENERATED"] = True
