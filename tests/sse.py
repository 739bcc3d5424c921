"""A small Server-Sent Events reader for tests and benches, over a real streaming HTTP response."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator

import httpx


def parse_frames(lines: Iterable[str]) -> Iterator[dict]:
    """SSE lines → frames: `{"id", "event", "data", "retry"}` as sent, or `{"comment": text}`."""
    frame: dict = {}
    for line in lines:
        if line == "":
            if frame:
                yield frame
                frame = {}
            continue
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
            continue
        field, _, value = line.partition(":")
        frame[field] = value[1:] if value.startswith(" ") else value
    if frame:
        yield frame


def events_only(frames: Iterable[dict]) -> Iterator[dict]:
    """Only the frames that carry an event (`data`), comments and `retry` left out."""
    return (frame for frame in frames if "data" in frame)


def read_events(url: str, until: str | None = None, timeout: float = 20.0, headers: dict | None = None) -> list[dict]:
    """The events of one SSE stream (decoded `data`), up to the first named `until` or the end."""
    received = []
    with httpx.stream("GET", url, headers=headers or {}, timeout=timeout) as response:
        assert response.status_code == 200, (response.status_code, response.read())
        for frame in events_only(parse_frames(response.iter_lines())):
            event = json.loads(frame["data"])
            received.append(event)
            if until is not None and frame.get("event") == until:
                break
    return received


async def aparse_frames(lines) -> AsyncIterator[dict]:
    """`parse_frames` for an async line iterator (httpx's `aiter_lines`)."""
    frame: dict = {}
    async for line in lines:
        if line == "":
            if frame:
                yield frame
                frame = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            field, _, value = line.partition(":")
            frame[field] = value[1:] if value.startswith(" ") else value


class HeldStream:
    """One SSE client of a `StreamCrowd`: what it received, and when (wall clock)."""

    def __init__(self, url: str):
        self.url = url
        self.status: int | None = None
        self.opened = False
        self.ended = False
        self.error: BaseException | None = None
        self.events: list[tuple[float, dict]] = []


class StreamCrowd:
    """Many concurrent SSE clients in one background asyncio loop, observable from sync code."""

    def __init__(self, urls: list[str]):
        self.streams = [HeldStream(url) for url in urls]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> StreamCrowd:
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def opened(self) -> int:
        return sum(stream.opened for stream in self.streams)

    def wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            errors = [s.error for s in self.streams if s.error is not None]
            if errors:
                raise AssertionError(f"{len(errors)} stream(s) failed, first: {errors[0]!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._started.set()
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        timeout = httpx.Timeout(30.0, read=None)
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
            tasks = []
            for stream in self.streams:
                tasks.append(asyncio.create_task(self._hold(client, stream)))
                await asyncio.sleep(0.002)  # a steady ramp rather than one accept() storm
            await self._stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    async def _hold(client: httpx.AsyncClient, stream: HeldStream) -> None:
        try:
            async with client.stream("GET", stream.url) as response:
                stream.status = response.status_code
                async for frame in aparse_frames(response.aiter_lines()):
                    if "retry" in frame:
                        stream.opened = True
                    elif "data" in frame:
                        stream.events.append((time.time(), json.loads(frame["data"])))
            stream.ended = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # recorded for the caller to report
            stream.error = exc
