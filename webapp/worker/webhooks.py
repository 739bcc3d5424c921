"""The webhook delivery thread of each `worker.py` supervisor: drains the outbox in Redis.

It claims due deliveries (webapp/store/webhooks.py) and makes each attempt in a small pool
of threads (WEBHOOK_CONCURRENCY), at most half of them to one host, so a slow or dead
endpoint holds at most half of the slots, each for at most WEBHOOK_TIMEOUT, and never the
job-running worker processes, which only record deliveries beside their events. Several
supervisors share the outbox: a claim holds a delivery for a lease (twice the timeout plus
5 s), and a delivery claimed by a supervisor that died comes due again when it runs out.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
from collections import Counter

from redis.exceptions import RedisError

from webapp.infra.redis import REDIS_UNAVAILABLE, RedisFactory, unavailable_reason
from webapp.service.webhooks import Deliverer
from webapp.store import jobreads
from webapp.store.webhooks import Claimed, Outbox, host_key, now_ms
from webapp.worker.resilience import OutageLog

log = logging.getLogger("webapp.worker.webhooks")


class DeliveryThread(threading.Thread):
    """Claims due deliveries while it has free slots and hands each to its pool."""

    def __init__(self, app, factory: RedisFactory):
        super().__init__(name="jobsvc-webhooks", daemon=True)
        config = app.config
        self.connection = factory.client(socket_timeout=10, name="jobsvc-webhooks")
        self.outbox = Outbox(self.connection)
        names = app.extensions["jobsvc"].names_by_path
        self.deliverer = Deliverer(self.outbox, config, lambda job_id: self._job_view(job_id, names))
        self.concurrency = max(1, int(config["WEBHOOK_CONCURRENCY"]))
        self.per_host = max(1, self.concurrency // 2)
        self.lease = 2 * float(config["WEBHOOK_TIMEOUT"]) + 5
        self.claimant = f"{socket.gethostname().split('.')[0]}-{os.getpid()}"
        # Daemon threads, not a ThreadPoolExecutor (whose threads are joined at exit): stopping
        # worker.py never waits for an attempt in flight; one cut short is delivered again later.
        self.work: queue.SimpleQueue = queue.SimpleQueue()
        self.senders = [
            threading.Thread(target=self._send_loop, name=f"jobsvc-webhook-{index}", daemon=True)
            for index in range(self.concurrency)
        ]
        self.busy: Counter[str] = Counter()  # attempts in flight, by host
        self.lock = threading.Lock()
        self.slot_freed = threading.Event()
        self._stop_event = threading.Event()

    def _job_view(self, job_id: str, names) -> dict | None:
        """The job as GET /api/jobs/<id> shows it (without attempts), for the delivery's body."""
        try:
            job, results, last_event_id = jobreads.read(self.connection, job_id, results=1)
        except Exception:  # expired, or unreadable: the event alone is still worth delivering
            return None
        return jobreads.to_dict(job, results[0] if results else None, last_event_id, names)

    def run(self) -> None:
        for sender in self.senders:
            sender.start()
        outage = OutageLog(log, "webhooks")
        while not self._stop_event.is_set():
            try:
                if self._turn():
                    outage.succeeded()
            except RedisError as exc:
                outage.failed(exc)
                self._stop_event.wait(1.0)
            except Exception:
                log.exception("webhooks: unexpected error; retrying")
                self._stop_event.wait(1.0)

    def _turn(self) -> bool:
        """Claim what may go now, then wait a little; False when it only waited for a free slot."""
        with self.lock:
            free = self.concurrency - sum(self.busy.values())
            busy = dict(self.busy)
            self.slot_freed.clear()
        if free <= 0:
            self.slot_freed.wait(1.0)
            return False
        # The claim skips hosts that already have their share of the slots: their backlog waits
        # in Redis, unread, and the other hosts' deliveries go out meanwhile.
        claimed = self.outbox.claim(self.claimant, free, self.lease, self.per_host, busy)
        for delivery in claimed:
            host = host_key(delivery.url)
            with self.lock:
                self.busy[host] += 1
            self.work.put((delivery, host))
        if len(claimed) < free:  # nothing more may go now: sleep until woken or the next is due
            due = self.outbox.next_due()
            wait = 1.0 if due is None else (due - now_ms()) / 1000
            # A due delivery left unclaimed belongs to a busy host: look again a little later.
            self.outbox.wait(0.2 if wait <= 0 else min(1.0, wait))
        return True

    def _send_loop(self) -> None:
        while True:
            delivery, host = self.work.get()
            self._attempt(delivery, host)

    def _attempt(self, delivery: Claimed, host: str) -> None:
        try:
            outcome = self.deliverer.attempt(delivery)
            level = logging.INFO if outcome in ("delivered", "retry") else logging.WARNING
            log.log(level, "webhook %s (job %s, %s) to %s: %s", delivery.id, delivery.job_id, delivery.event,
                    host, outcome)  # fmt: skip
        except REDIS_UNAVAILABLE as exc:  # an outage as the outcome was reported: it may have landed or not
            log.warning("webhook %s (job %s, %s) to %s: %s; its outcome may not be recorded, and if not it is "
                        "sent again when its claim runs out", delivery.id, delivery.job_id, delivery.event, host,
                        unavailable_reason(exc))  # fmt: skip
        except Exception:
            log.exception("webhook %s: attempt failed; it is retried when its claim runs out", delivery.id)
        finally:
            with self.lock:
                self.busy[host] -= 1
                if self.busy[host] <= 0:
                    del self.busy[host]
            self.slot_freed.set()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop claiming; attempts in flight end with the process (any cut short are redelivered)."""
        self._stop_event.set()
        self.slot_freed.set()
        self.join(timeout)


def start_deliveries(app, factory: RedisFactory) -> DeliveryThread | None:
    """The delivery thread, when webhooks are on (WEBHOOK_ALLOWED_HOSTS is set)."""
    if not app.config["WEBHOOK_ALLOWED_HOSTS"]:
        return None
    thread = DeliveryThread(app, factory)
    thread.start()
    log.info("webhook delivery thread started (%d at once)", thread.concurrency)
    return thread
