"""Periodic schedules: a thread of every `worker.py` supervisor that runs their due ticks.

Every supervisor runs one, on every machine; they do not elect a leader. Each sleeps until
the next schedule's run time (at most SCHEDULE_POLL_INTERVAL, so schedules created or
changed elsewhere are seen within it), then hands every due schedule to the service, whose
one-script transitions let exactly one ticker enqueue each tick (webapp/service/schedules.py).
Time is Redis's (`TIME`), so machines with skewed clocks agree on what is due.
"""

from __future__ import annotations

import logging
import threading
import time

from redis.exceptions import RedisError

from webapp.infra.redis import RedisFactory
from webapp.service.jobservice import JobService
from webapp.service.schedules import ScheduleService
from webapp.worker.resilience import OutageLog

log = logging.getLogger("webapp.worker.ticker")


class Ticker(threading.Thread):
    """Runs due schedule ticks until stopped; lives and dies with its supervisor."""

    def __init__(self, config, factory: RedisFactory, catalog, declared=None):
        super().__init__(name="schedule-ticker", daemon=True)
        self.declared = declared  # jobs.SCHEDULES, applied once Redis answers
        connection = factory.client(socket_timeout=10, name="jobsvc-ticker")
        self.service = ScheduleService(JobService(connection, config, catalog))
        self.poll = float(config["SCHEDULE_POLL_INTERVAL"])
        self._stop_event = threading.Event()
        self.passes = 0

    def run(self) -> None:
        backoff = 0.1
        outage = OutageLog(log, "schedule ticker")
        while not self._stop_event.is_set():
            try:
                if self.declared is not None:
                    self._apply_declared()
                now_ms = self.service.store.now_ms()
                started = time.monotonic()
                counted, upcoming = self.service.tick_due(now_ms)
                self.passes += 1
                if counted:
                    log.debug("schedules: %s", counted)
                elapsed_ms = (time.monotonic() - started) * 1000
                wait = self.poll if upcoming is None else (upcoming - now_ms - elapsed_ms) / 1000
                wait = min(self.poll, max(0.0, wait))
                backoff = 0.1
                outage.succeeded()
            except RedisError as exc:
                # Redis down or restarting: no tick is lost, they are due (or missed) when it is back.
                outage.failed(exc)
                wait, backoff = backoff, min(backoff * 2, self.poll * 5)
            except Exception:
                log.exception("schedule ticker: unexpected error; retrying")
                wait = self.poll
            self._stop_event.wait(wait)
        self.service.store.connection.close()

    def _apply_declared(self) -> None:
        report = self.service.sync_declared(self.declared)
        self.declared = None
        changed = {kind: names for kind, names in report.items() if names and kind != "unchanged"}
        if changed or report["unchanged"]:
            log.info("schedules declared in code: %s", changed or f"{len(report['unchanged'])} unchanged")

    def stop(self, timeout: float = 2.0) -> None:
        self._stop_event.set()
        self.join(timeout)


def start_ticker(app, factory: RedisFactory, declared) -> Ticker:
    """Start ticking; the schedules declared in code (`jobs.SCHEDULES`) are applied first."""
    ticker = Ticker(app.config, factory, app.extensions["jobsvc"].catalog, declared)
    ticker.start()
    log.info("schedule ticker started (%d schedule(s) declared in code)", len(declared))
    return ticker
