"""GET /api/jobs time per page at 5k and at 100k finished jobs (private Redis, in-process app).

Run: .venv/bin/python -m bench.listing [--pages 50] [--limit 50]
The two sizes live in two Redis databases and their pages are timed alternately, so a busy
machine slows both alike. Prints median and p99 per page and the ratio of the medians: the
index makes a page's cost depend on the page size, not on the number of jobs, so it stays near 1.
"""

from __future__ import annotations

import argparse
import statistics
import time

from redis import Redis

from tests.bulk import write_finished_jobs
from tests.servers import RedisServer
from webapp import create_app

SIZES = {"5k": (5_000, 1), "100k": (100_000, 2)}  # label: (jobs, Redis database)


class Pager:
    """Follows next_cursor through one listing, timing each page."""

    def __init__(self, client, query: str):
        self.client, self.query, self.cursor, self.timings = client, query, None, []

    def next_page(self) -> None:
        url = f"/api/jobs?{self.query}" + (f"&cursor={self.cursor}" if self.cursor else "")
        started = time.perf_counter()
        response = self.client.get(url)
        self.timings.append(time.perf_counter() - started)
        assert response.status_code == 200, response.get_json()
        self.cursor = response.get_json()["next_cursor"]


def summary(timings: list[float]) -> str:
    ordered = sorted(timings)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered) * 1000:6.2f} ms, p99 {p99 * 1000:6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--limit", type=int, default=50)
    options = parser.parse_args()
    server = RedisServer().start()
    try:
        clients = {}
        for label, (size, database) in SIZES.items():
            url = server.url.rsplit("/", 1)[0] + f"/{database}"
            write_finished_jobs(Redis.from_url(url), size)
            clients[label] = create_app({"REDIS_URL": url, "TESTING": True}).test_client()
            jobs = len(clients[label].get(f"/api/jobs?limit={options.limit}").get_json()["jobs"])
            assert jobs == options.limit, f"database {database} lists {jobs} jobs"
        for query, pages in ((f"limit={options.limit}", options.pages), (f"limit={options.limit}&status=failed", 20)):
            pagers = {label: Pager(client, query) for label, client in clients.items()}
            for pager in pagers.values():  # warm up: connections, first imports
                pager.next_page()
                pager.timings.clear()
            for _ in range(pages):
                for pager in pagers.values():
                    pager.next_page()
            print(f"GET /api/jobs?{query}, {pages} pages each:")
            for label, pager in pagers.items():
                print(f"  {label:>5} jobs: {summary(pager.timings)}")
            ratio = statistics.median(pagers["100k"].timings) / statistics.median(pagers["5k"].timings)
            print(f"  ratio 100k / 5k (medians): {ratio:.2f}")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
