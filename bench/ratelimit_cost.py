"""What a per-client rate limit costs per submission: Flask-Limiter (Redis storage) vs the
fixed-window counter inside the submission script. Run: python bench/ratelimit_cost.py

Needs flask-limiter installed (it is not a dependency of the service: this is the measurement
behind that choice). Starts a private redis-server; prints medians and p99 per request, and
the ratio to the same app with no limit, all measured in the same run.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import RedisServer  # noqa: E402
from webapp import create_app  # noqa: E402

N = 3000
ROUNDS = 10
BODY = json.dumps({"name": "add", "args": [1, 2]})


def timings(client, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.post("/api/jobs", data=BODY, content_type="application/json")
        samples.append(time.perf_counter() - started)
        assert response.status_code == 202, response.get_json()
    return samples


def main() -> None:
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    server = RedisServer().start()
    try:
        clients = {}
        for label in ("no limit", "built-in (same script)", "flask-limiter (redis)"):
            config = {"REDIS_URL": server.url, "TESTING": True}
            if label.startswith("built-in"):
                config["SUBMIT_RATE_LIMIT"] = "1000000/second"
            app = create_app(config)
            if label.startswith("flask-limiter"):
                limiter = Limiter(get_remote_address, app=app, storage_uri=server.url, strategy="fixed-window")
                # Replace the registered view: decorating it after registration would not apply.
                view = app.view_functions["api.submit_job"]
                app.view_functions["api.submit_job"] = limiter.limit("1000000/second")(view)
            clients[label] = app.test_client()
            timings(clients[label], 100)  # warm up
        results: dict[str, list[float]] = {label: [] for label in clients}
        # Interleave the variants in rounds, so drift in machine load hits them alike.
        for _ in range(ROUNDS):
            for label, client in clients.items():
                results[label] += timings(client, N // ROUNDS)
            counted = bool(server.client().keys("LIMITS*"))
            assert counted, "Flask-Limiter did not count anything"
            server.client().flushall()
        base = statistics.median(results["no limit"])
        print(f"{N} submissions per variant in {ROUNDS} interleaved rounds, Flask test client, private redis-server")
        for label, samples in results.items():
            median = statistics.median(samples)
            p99 = statistics.quantiles(samples, n=100)[98]
            print(f"  {label:<24} median {median * 1e6:6.0f} us  p99 {p99 * 1e6:6.0f} us  ratio {median / base:.2f}")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
