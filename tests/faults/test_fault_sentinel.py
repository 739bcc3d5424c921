"""Redis Sentinel for real: a master, a replica and a sentinel started here; the master is
killed during load; the service follows the promoted replica and goes on: submissions,
workers, the dashboard, and an SSE client of a real gunicorn web process that keeps receiving
events across the failover. What the asynchronous replication lost is counted and reported,
not hidden."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
from redis import Redis
from redis.exceptions import ConnectionError

from tests.faults.faultkit import report, wait_until
from tests.servers import RedisServer, free_port, server_binary, start_web, start_worker
from tests.sse import parse_frames
from webapp import create_app

MASTER_NAME = "jobsvc-test"


class SentinelProcess:
    def __init__(self, master_port: int):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="jobsvc-sentinel-"))
        conf = self.dir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\nlogfile {self.dir / 'sentinel.log'}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 1\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
            f"sentinel failover-timeout {MASTER_NAME} 5000\n"
        )
        self.process = subprocess.Popen(
            [server_binary(), str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.client = Redis(port=self.port, socket_timeout=1, decode_responses=True)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_master_killed_under_load_service_follows_the_new_master():
    master = RedisServer().start()
    replica = RedisServer(extra=["--replicaof", "127.0.0.1", str(master.port)]).start()
    sentinel = SentinelProcess(master.port)
    worker = web = None
    stop = threading.Event()  # ends the load
    stream_open, stream_done = threading.Event(), threading.Event()
    try:
        wait_until(lambda: replica.client().info("replication")["master_link_status"] == "up", 20, 0.1, "replica")
        wait_until(lambda: _known_replicas(sentinel) >= 1, 30, 0.2, "sentinel sees the replica")
        settings = {
            "REDIS_URL": "redis://127.0.0.1:1/0",  # host and port unused: the sentinel says where the master is
            "REDIS_SENTINEL_HOSTS": [f"127.0.0.1:{sentinel.port}"],
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
            "TESTING": True,
            "RQ_DASHBOARD_PASSWORD": "pw",
        }
        app = create_app(settings)
        worker = start_worker(
            "redis://127.0.0.1:1/0",
            REDIS_SENTINEL_HOSTS=f"127.0.0.1:{sentinel.port}",
            REDIS_SENTINEL_MASTER=MASTER_NAME,
            WORKER_PROCESSES="2",
            ABANDON_AFTER="4",
            RECOVERY_INTERVAL="1",
        )
        sentinel_env = {"REDIS_SENTINEL_HOSTS": f"127.0.0.1:{sentinel.port}", "REDIS_SENTINEL_MASTER": MASTER_NAME}
        web, base = start_web("redis://127.0.0.1:1/0", WEB_CONCURRENCY="1", **sentinel_env)
        accepted: list[tuple[float, str]] = []
        refused: list[float] = []
        streamed: list[dict] = []

        def follow_all_events():
            with httpx.stream("GET", base + "/api/events", timeout=httpx.Timeout(5, read=60)) as response:
                assert response.status_code == 200
                for frame in parse_frames(response.iter_lines()):
                    stream_open.set()
                    if "data" in frame:
                        streamed.append(json.loads(frame["data"]))
                    if stream_done.is_set():
                        return

        listener = threading.Thread(target=follow_all_events, daemon=True)
        listener.start()
        assert stream_open.wait(20), "the SSE stream did not open"

        def load():
            client = app.test_client()
            while not stop.is_set():
                response = client.post("/api/jobs", json={"name": "add", "args": [1, 2]})
                if response.status_code == 202:
                    accepted.append((time.monotonic(), response.get_json()["id"]))
                else:
                    assert response.status_code == 503, response.get_json()
                    refused.append(time.monotonic())
                    time.sleep(0.05)
                time.sleep(0.005)

        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        wait_until(lambda: len(accepted) >= 100, 30, message="load running")
        master.kill()
        killed_at = time.monotonic()
        wait_until(lambda: any(moment > killed_at + 0.5 for moment, _ in accepted) and _promoted(sentinel, master), 40,
                   0.1, "a submission accepted by the new master")  # fmt: skip
        resumed_after = min(moment for moment, _ in accepted if moment > killed_at + 0.5) - killed_at
        time.sleep(1.0)
        stop.set()
        thread.join(10)

        new_master = app.extensions["redis"]
        wait_until(lambda: _master_port(new_master) == replica.port, 20, 0.2, "clients follow the new master")
        ids = [job_id for _, job_id in accepted]

        def states():
            try:
                with new_master.pipeline(transaction=False) as pipe:
                    for job_id in ids:
                        pipe.hget(f"rq:job:{job_id}", "status")
                    return [value.decode() if value else "missing" for value in pipe.execute()]
            except ConnectionError:
                return ["unknown"]

        try:
            wait_until(lambda: all(state in ("finished", "missing") for state in states()), 60, 0.5, "jobs done")
        except AssertionError:
            now = dict(zip(ids, states(), strict=False))
            left = {job_id: state for job_id, state in now.items() if state not in ("finished", "missing")}
            raise AssertionError(f"jobs not done: {left}\n{worker.output()[-6000:]}") from None
        final = states()
        lost = final.count("missing")
        after_failover = [job_id for moment, job_id in accepted if moment > killed_at + resumed_after]
        # The SSE client, connected through the whole failover, hears the new master's jobs end.
        finished_streamed = lambda: {e["job_id"] for e in streamed if e["event"] == "finished"}  # noqa: E731
        httpx.post(base + "/api/jobs", json={"name": "add", "args": [0, 0]}, timeout=5)  # one more event to read
        wait_until(lambda: set(after_failover) <= finished_streamed(), 30, 0.2, "SSE events after the failover")
        stream_done.set()
        # The dashboard follows the same master (rq-dashboard's redis+sentinel:// URL).
        queues = app.test_client().get("/rq/0/data/queues.json", headers=_basic("admin", "pw"))
        assert queues.status_code == 200 and "default" in queues.get_data(as_text=True)
        report(
            "sentinel_failover",
            runs=1,
            jobs=len(ids),
            accepted_before_kill=sum(1 for moment, _ in accepted if moment < killed_at),
            refused_503=len(refused),
            lost=lost,
            duplicated=0,
            resumed_seconds_after_master_kill=round(resumed_after, 2),
            sse_events_after_failover=sum(1 for e in streamed if e["job_id"] in set(after_failover)),
        )
        # Jobs accepted by the new master are never lost; what the old one had not yet
        # replicated when it died is the measured `lost` (async replication).
        assert all(final[ids.index(job_id)] == "finished" for job_id in after_failover)
        assert resumed_after < 30
    finally:
        stop.set()
        stream_done.set()
        for process in (worker, web):
            if process is not None:
                process.stop()
        sentinel.stop()
        replica.cleanup()
        master.cleanup()


def _basic(user: str, password: str) -> dict:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _master_port(client: Redis) -> int | None:
    try:
        return int(client.connection_pool.get_master_address()[1])
    except ConnectionError:
        return None


def _known_replicas(sentinel: SentinelProcess) -> int:
    try:
        return len(sentinel.client.sentinel_slaves(MASTER_NAME))
    except Exception:
        return 0


def _promoted(sentinel: SentinelProcess, old: RedisServer) -> bool:
    try:
        return int(sentinel.client.sentinel_get_master_addr_by_name(MASTER_NAME)[1]) != old.port
    except Exception:
        return False


def test_the_fast_worker_s_own_connection_goes_to_the_sentinel_master():
    """STEP runs on a connection of the worker's own, outside its pool. redis-py connects an
    unconnected connection to its own host and port when it sends, which under Sentinel skips
    the master lookup: STEP and the idle wait went to localhost:6379, any Redis there (and only
    a NOSCRIPT there sent the claim to the master after all). It must reach the master, also
    after the connection is dropped."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    from webapp.worker.fastworker import FastWorker

    master = RedisServer().start()
    sentinel = SentinelProcess(master.port)
    try:
        wait_until(lambda: _master_port_of(sentinel) == master.port, 30, 0.2, "sentinel knows the master")
        app = create_app({"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_SENTINEL_HOSTS": [f"127.0.0.1:{sentinel.port}"],
                          "REDIS_SENTINEL_MASTER": MASTER_NAME, "TESTING": True})  # fmt: skip
        client = app.extensions["redis"]
        queue = Queue("default", connection=client, serializer=JSONSerializer)
        worker = FastWorker([queue], connection=client, app=app)
        try:
            master.client().rpush("jobsvc:wake:default", "1")
            assert worker._wait_then_claim() is None  # the token is taken on the master: no job
            assert master.client().llen("jobsvc:wake:default") == 0
            assert worker._step_connection().port == master.port
            worker._drop_step_connection(worker._step_connection())
            assert worker._step(None, claim=True) == (None, None)
            assert worker._step_connection().port == master.port
        finally:
            worker.close_step_connections()
    finally:
        sentinel.stop()
        master.cleanup()


def _master_port_of(sentinel: SentinelProcess) -> int | None:
    try:
        return int(sentinel.client.sentinel_get_master_addr_by_name(MASTER_NAME)[1])
    except Exception:
        return None
