"""Command-line tools: `flask listen` prints job notifications and the demo channel; `flask jobs ...`."""

from __future__ import annotations

import json

import click
from flask import Flask, current_app

from webapp.jobs_cli import jobs_group
from webapp.redis_client import make_client


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
@click.option("--job", "job_id", default=None, help="Only this job's events.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, as published.")
@click.option("--count", type=int, default=None, help="Stop after this many messages.")
def listen_command(job_id: str | None, as_json: bool, count: int | None) -> None:
    """Print job notifications and demo messages as they arrive (Ctrl-C to stop)."""
    config = current_app.config
    client = make_client(config, socket_timeout=None)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    channels = [config["EVENTS_CHANNEL"]] if job_id else [config["EVENTS_CHANNEL"], config["DEMO_CHANNEL"]]
    pubsub.subscribe(*channels)
    click.echo(f"listening on {', '.join(channels)} at {config['REDIS_URL']} (Ctrl-C to stop)", err=True)
    seen = 0
    try:
        for message in pubsub.listen():
            channel = message["channel"].decode()
            data = message["data"].decode()
            if job_id and f'"job_id":"{job_id}"' not in data:
                continue
            click.echo(data if as_json else _describe(channel, data, config["EVENTS_CHANNEL"]))
            seen += 1
            if count is not None and seen >= count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        pubsub.close()


def init_app(app: Flask) -> None:
    app.cli.add_command(listen_command)
    app.cli.add_command(jobs_group)
