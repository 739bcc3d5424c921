"""Server-Sent Events, parsed line by line (the subset the jobsvc API sends: id, event, data,
retry, comments), so the client needs nothing but httpx."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from jobsvc_client.models import Event


class SSEParser:
    """Feed it lines (without their line ends); it returns the events they complete."""

    def __init__(self):
        self.event_id: str | None = None
        self.name = "message"
        self.data: list[str] = []

    def feed(self, line: str) -> Event | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: keep-alive, "waiting for redis"
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "id":
            self.event_id = value
        elif field == "event":
            self.name = value
        elif field == "data":
            self.data.append(value)
        return None

    def _dispatch(self) -> Event | None:
        if not self.data:
            self.name = "message"
            return None
        text = "\n".join(self.data)
        event_id, name = self.event_id, self.name
        self.data, self.name, self.event_id = [], "message", None
        try:
            data = json.loads(text)
        except ValueError:
            data = {"data": text}
        return Event.from_json(event_id, name, data if isinstance(data, dict) else {"data": data})


def parse(lines: Iterable[str]) -> Iterator[Event]:
    parser = SSEParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
