"""`flask listen`: print job notifications, operator events (queue pauses and resumes, bulk
actions' progress) and the demo channel's messages as they arrive."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import with_appcontext
from redis import Redis

from webapp.infra.errors import NotFound
from webapp.store import keys
from webapp.store.events import BATCH, is_terminal, read_events
from webapp.store.jobreads import check_job_id


def _describe_bulk(event: dict) -> str:
    """A bulk action's event as one line: who, what, its counts (dry runs say so)."""
    head = f"{event['at']} {event['event']} {event['bulk_id'][:8]} {event['action']}"
    if event.get("dry_run"):
        head += " (dry run)"
    if event["event"] == "bulk.started":
        given = " ".join(f"{name}={value}" for name, value in sorted(event["filter"].items())) or "every job"
        return f"{head} [{given}] by {event.get('by') or 'the operator'}"
    counts = f"{event['matched']} matched, {event['eligible']} eligible, {event['done']} done"
    if event["event"] == "bulk.progress":
        return f"{head} page {event['page']}: {counts}"
    more = " (more: call again with next_cursor)" if event.get("next_cursor") else ""
    return f"{head} {counts} in {event['pages']} pages{more}"


def _describe(channel: str, data: str, events_channel: str) -> str:
    if channel == events_channel + keys.QUEUE_EVENTS_SUFFIX:
        try:
            event = json.loads(data)
            if str(event["event"]).startswith("bulk."):
                return _describe_bulk(event)
            return f"{event['at']} {event['event']} [{event['queue']}] by {event.get('by') or 'the operator'}"
        except (ValueError, KeyError, TypeError, AttributeError):
            return f"[{channel}] {data}"
    if channel != events_channel:
        return f"[{channel}] Task get {data}" if data.isdigit() else f"[{channel}] {data}"
    try:
        event = json.loads(data)
    except ValueError:
        return f"[{channel}] {data}"
    extra = ""
    if event.get("progress"):
        extra = f" {event['progress'].get('percent')}%"
    if event.get("error"):
        extra = f" {event['error'].get('type')}: {event['error'].get('message')}"
    where = f"{event.get('job_id')} {event.get('name')} [{event.get('queue')}]"
    return f"{event.get('at')} {event.get('event'):<9} {where}{extra}"


@click.command("listen")
@click.option("--job", "job_id", default=None, help="Only this job: its timeline so far, then live, until it ends.")
@click.option(
    "--channel",
    type=click.Choice(["all", "events", "operator", "queues", "demo"]),
    default="all",
    show_default=True,
    help="Job events, operator events (queue pauses and resumes, bulk actions' progress; `queues` is the "
    "same channel), the demo channel, or all of them (ignored with --job).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, as published.")
@click.option("--count", type=int, default=None, help="Stop after this many messages.")
@with_appcontext
def listen_command(job_id: str | None, channel: str, as_json: bool, count: int | None) -> None:
    """Print job notifications and demo messages as they arrive (Ctrl-C to stop)."""
    config = current_app.config
    client = current_app.extensions["redis_factory"].client(socket_timeout=None, name="jobsvc-listen")
    events_channel = keys.events_channel(config)
    if job_id:
        try:
            check_job_id(job_id)
        except NotFound as exc:
            raise click.BadParameter(exc.message, param_hint="--job") from None
        try:
            follow_job(client, config, events_channel, job_id, as_json, count)
        except KeyboardInterrupt:
            pass
        return
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    channels = {
        "all": [events_channel, config["DEMO_CHANNEL"], keys.queue_events_channel(config)],
        "events": [events_channel],
        "operator": [keys.queue_events_channel(config)],
        "queues": [keys.queue_events_channel(config)],
        "demo": [config["DEMO_CHANNEL"]],
    }[channel]
    pubsub.subscribe(*channels)
    where = current_app.extensions["redis_factory"].describe()
    click.echo(f"listening on {', '.join(channels)} at {where} (Ctrl-C to stop)", err=True)
    seen = 0
    try:
        for message in pubsub.listen():
            channel_name = message["channel"].decode()
            data = message["data"].decode()
            click.echo(data if as_json else _describe(channel_name, data, events_channel))
            seen += 1
            if count is not None and seen >= count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        pubsub.close()


def follow_job(client: Redis, config, events_channel: str, job_id: str, as_json: bool, count: int | None) -> None:
    """One job's events: replayed from its stream, then live, ending after its latest event if
    that is terminal (a job retried after it failed has both runs in its stream).

    As the SSE stream does: subscribe first, then read the stream after the last id printed
    on every notification (and every few seconds), so nothing falls between replay and live.
    """
    key = keys.job_events(job_id)
    if not client.exists(keys.job(job_id), key):
        raise click.ClickException(f"no job with id {job_id!r}: it never existed or has expired")
    pubsub = client.pubsub()
    try:
        pubsub.subscribe(events_channel)
        while (message := pubsub.get_message(timeout=5.0)) is not None and message["type"] != "subscribe":
            pass
        click.echo(f"following job {job_id} (Ctrl-C to stop)", err=True)
        last, seen = None, 0
        while True:
            entries = read_events(client, key, last)
            for event_id, event in entries:
                last = event_id
                data = json.dumps(event, separators=(",", ":"))
                click.echo(data if as_json else _describe(events_channel, data, events_channel))
                seen += 1
                if count is not None and seen >= count:
                    return
            if len(entries) == BATCH:
                continue
            if entries and is_terminal(entries[-1][1]):
                return  # its latest event ends it (an earlier one may be followed by a retry's run)
            if pubsub.get_message(timeout=float(config["SSE_POLL_INTERVAL"])) is None:
                if not client.exists(keys.job(job_id)) and not read_events(client, key, last, count=1):
                    click.echo(f"job {job_id} is gone (expired or deleted)", err=True)
                    return
            while pubsub.get_message(timeout=0) is not None:  # one re-read covers every queued notification
                pass
    finally:
        pubsub.close()
