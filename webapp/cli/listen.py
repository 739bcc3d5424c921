"""Command-line tools: `flask listen` prints job notifications and the demo channel; `flask jobs ...`."""

from __future__ import annotations

import json

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from redis import Redis
from rq.job import Job

from webapp.errors import NotFound
from webapp.events import is_terminal, job_stream_key
from webapp.jobs_cli import jobs_group
from webapp.jobstore import check_job_id
from webapp.redis_client import make_client
from webapp.tails import BATCH, read_entries


def _describe(channel: str, data: str, events_channel: str) -> str:
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
    type=click.Choice(["all", "events", "demo"]),
    default="all",
    show_default=True,
    help="Job events, the demo channel, or both (ignored with --job).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, as published.")
@click.option("--count", type=int, default=None, help="Stop after this many messages.")
@with_appcontext
def listen_command(job_id: str | None, channel: str, as_json: bool, count: int | None) -> None:
    """Print job notifications and demo messages as they arrive (Ctrl-C to stop)."""
    config = current_app.config
    client = make_client(config, socket_timeout=None)
    if job_id:
        try:
            check_job_id(job_id)
        except NotFound as exc:
            raise click.BadParameter(exc.message, param_hint="--job") from None
        try:
            follow_job(client, config, job_id, as_json, count)
        except KeyboardInterrupt:
            pass
        return
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    channels = {
        "all": [config["EVENTS_CHANNEL"], config["DEMO_CHANNEL"]],
        "events": [config["EVENTS_CHANNEL"]],
        "demo": [config["DEMO_CHANNEL"]],
    }[channel]
    pubsub.subscribe(*channels)
    click.echo(f"listening on {', '.join(channels)} at {config['REDIS_URL']} (Ctrl-C to stop)", err=True)
    seen = 0
    try:
        for message in pubsub.listen():
            channel_name = message["channel"].decode()
            data = message["data"].decode()
            click.echo(data if as_json else _describe(channel_name, data, config["EVENTS_CHANNEL"]))
            seen += 1
            if count is not None and seen >= count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        pubsub.close()


def follow_job(client: Redis, config, job_id: str, as_json: bool, count: int | None) -> None:
    """One job's events: replayed from its stream, then live, ending after the terminal one.

    As the SSE stream does: subscribe first, then read the stream after the last id printed
    on every notification (and every few seconds), so nothing falls between replay and live.
    """
    key = job_stream_key(job_id)
    if not client.exists(Job.key_for(job_id), key):
        raise click.ClickException(f"no job with id {job_id!r}: it never existed or has expired")
    pubsub = client.pubsub()
    try:
        pubsub.subscribe(config["EVENTS_CHANNEL"])
        while (message := pubsub.get_message(timeout=5.0)) is not None and message["type"] != "subscribe":
            pass
        click.echo(f"following job {job_id} at {config['REDIS_URL']} (Ctrl-C to stop)", err=True)
        last, seen = None, 0
        while True:
            entries = read_entries(client, key, last)
            for event_id, event, _ in entries:
                last = event_id
                data = json.dumps(event, separators=(",", ":"))
                click.echo(data if as_json else _describe(config["EVENTS_CHANNEL"], data, config["EVENTS_CHANNEL"]))
                seen += 1
                if is_terminal(event) or (count is not None and seen >= count):
                    return
            if len(entries) == BATCH:
                continue
            if pubsub.get_message(timeout=float(config["SSE_POLL_INTERVAL"])) is None:
                if not client.exists(Job.key_for(job_id)) and not read_entries(client, key, last, count=1):
                    click.echo(f"job {job_id} is gone (expired or deleted)", err=True)
                    return
            while pubsub.get_message(timeout=0) is not None:  # one re-read covers every queued notification
                pass
    finally:
        pubsub.close()


def init_app(app: Flask) -> None:
    app.cli.add_command(listen_command)
    app.cli.add_command(jobs_group)
