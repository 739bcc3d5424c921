"""A small Server-Sent Events reader for tests and benches, over a real streaming HTTP response."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


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
