"""``flask jobs``: the jobs from a terminal, with live progress bars.

Like every ``flask`` command it runs with the app's configuration (``REDIS_URL``,
``DATABASE_URL``), so it reads the same database and follows the same event
channels as the web processes.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup
from redis import Redis
from redis.exceptions import RedisError
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from myapp.connections import get_redis
from myapp.db import db
from myapp.errors import Conflict, TooManyJobs
from myapp.job_json import TERMINAL
from myapp.jobs import control
from myapp.keys import channel_for, published_on
from myapp.models import TrackedJob, User
from myapp.ordering import is_older
from myapp.wire import next_message, published

#: Seconds before following again after the subscription was lost.
RESUBSCRIBE_SECONDS = 1.0

cli = AppGroup("jobs", help="List, watch, cancel and retry jobs.")


def init_app(app: Flask) -> None:
    app.cli.add_command(cli)


def _user(name: str | None) -> User | None:
    if name is None:
        return None
    user = db.session.scalar(db.select(User).filter_by(name=name))
    if user is None:
        raise click.ClickException(f"no user {name!r}")
    return user


def _job(job_id: str) -> TrackedJob:
    row = db.session.get(TrackedJob, job_id)
    if row is None:
        raise click.ClickException(f"no job {job_id!r}")
    return row


@cli.command("list")
@click.option("--user", "user_name", help="Only this user's jobs.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
def list_jobs(user_name: str | None, limit: int) -> None:
    """The newest jobs, with their state (a batch or sequence as one line)."""
    query = db.select(TrackedJob, User.name).join(User, TrackedJob.user_id == User.id)
    query = query.where(TrackedJob.parent_id.is_(None))
    if (user := _user(user_name)) is not None:
        query = query.where(TrackedJob.user_id == user.id)
    rows = db.session.execute(query.order_by(TrackedJob.created_at.desc()).limit(limit))
    table = Table("id", "user", "kind", "status", "progress", "message", "created")
    for row, name in rows:
        job = row.to_dict()
        percent = job["progress"]["percent"]
        table.add_row(
            job["id"], name, job["kind"], job["status"],
            "" if percent is None else f"{percent:.0f}%",
            job["error"] or job["progress"]["message"] or "", job["created_at"],
        )  # fmt: skip
    Console().print(table)


@cli.command("cancel")
@click.argument("job_id")
def cancel(job_id: str) -> None:
    """Cancel a queued or running job."""
    try:
        job = control.cancel(_job(job_id))
    except Conflict as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{job['id']}: {'canceled' if job['status'] == 'canceled' else 'cancel requested'}")


@cli.command("retry")
@click.argument("job_id")
def retry(job_id: str) -> None:
    """Run a failed or canceled job again."""
    try:
        job = control.retry(_job(job_id))
    except (Conflict, TooManyJobs) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{job['id']}: {job['status']}")


@cli.command("watch")
@click.argument("job_id", required=False)
@click.option("--user", "user_name", help="Only this user's jobs.")
def watch(job_id: str | None, user_name: str | None) -> None:
    """Follow jobs live until Ctrl-C; with JOB_ID, until it ends.

    Exits 0 when JOB_ID finished, 1 when it failed or was canceled.
    """
    row = _job(job_id) if job_id else None
    user = _user(user_name)
    bars = _Bars()
    with bars.progress:
        _follow(get_redis(), row, user, bars)
    if row is not None:
        status = bars.status(row.id)
        click.echo(
            f"{row.id}: {status}"
            + (f" ({bars.jobs[row.id]['error']})" if status == "failed" else "")
        )
        sys.exit(0 if status == "finished" else 1)


def _follow(redis: Redis, row: TrackedJob | None, user: User | None, bars: _Bars) -> None:
    """Show the jobs' events until ``row`` ends (or for good).

    On each subscription, first or again after a lost one (a Redis failover, which
    redis-py may ride out by itself), the current state is read from the database:
    subscribed first, then the state, so nothing falls in between, and nothing
    published while the subscription was down is missed for good.
    """
    while row is None or bars.status(row.id) not in TERMINAL:
        pubsub = redis.pubsub()
        try:
            if row is not None or user is not None:
                pubsub.subscribe(published_on(redis, channel_for(row.user_id if row else user.id)))
            else:
                pubsub.psubscribe(published_on(redis, channel_for("*")))
            while row is None or bars.status(row.id) not in TERMINAL:
                message = next_message(pubsub, wait=1.0)
                if message is None:
                    continue
                if message["type"] in ("subscribe", "psubscribe"):
                    for job in _current(row, user):
                        bars.show(job)
                    continue
                if message["type"] not in ("message", "pmessage"):
                    continue
                event = published(message["data"])
                if event.output is not None and (row is None or event.job_id == row.id):
                    # The job's output, above the bars, as it comes.
                    bars.progress.console.print(event.output["text"], end="", markup=False)
                job = event.job
                if job is None or job.get("parent") is not None:
                    continue  # not a job's state, or a piece of a batch: its parent's bar shows it
                if row is None or job["id"] == row.id:
                    bars.show(job)
        except RedisError as exc:
            bars.progress.console.print(f"lost Redis ({exc}); following again")
            time.sleep(RESUBSCRIBE_SECONDS)
        finally:
            pubsub.close()


def _current(row: TrackedJob | None, user: User | None) -> list[dict[str, Any]]:
    if row is not None:
        db.session.refresh(row)
        return [row.to_dict()]
    query = db.select(TrackedJob).where(
        TrackedJob.status.not_in(TERMINAL), TrackedJob.parent_id.is_(None)
    )
    if user is not None:
        query = query.where(TrackedJob.user_id == user.id)
    return [r.to_dict() for r in db.session.scalars(query.order_by(TrackedJob.created_at))]


class _Bars:
    """One rich progress bar per job; indeterminate ones pulse."""

    def __init__(self):
        self.progress = Progress(
            TextColumn("{task.fields[label]}"), BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"), TextColumn("{task.fields[status]}"),
            TextColumn("{task.fields[message]}"),
        )  # fmt: skip
        self.tasks: dict[str, TaskID] = {}
        self.jobs: dict[str, dict[str, Any]] = {}

    def status(self, job_id: str) -> str | None:
        return self.jobs.get(job_id, {}).get("status")

    def show(self, job: dict[str, Any]) -> None:
        old = self.jobs.get(job["id"])
        if old is not None and is_older(job, than=old):
            return
        self.jobs[job["id"]] = job
        percent = job["progress"]["percent"]
        fields = {
            "label": f"{job['kind']} {job['id'][:8]}",
            "status": job["status"],
            "message": job["error"] or job["progress"]["message"] or "",
        }
        total = None if percent is None and job["status"] == "started" else 100
        completed = 100 if job["status"] == "finished" else (percent or 0)
        if job["id"] not in self.tasks:
            self.tasks[job["id"]] = self.progress.add_task("", total=total, **fields)
        self.progress.update(self.tasks[job["id"]], total=total, completed=completed, **fields)
