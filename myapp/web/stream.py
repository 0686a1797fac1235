"""The SSE stream: flask-sse's blueprint, made per-user, lossless and shared.

Stock flask-sse opens a new Redis pool on every publish, lets anyone read any
``?channel=``, holds back the headers until the first event, keeps no ids and
opens one pub/sub connection per client. :class:`UserStream` keeps its wire
format and its :meth:`publish`, and instead:

- reads only the signed-in user's channel;
- sends ``retry:`` at once, then either the events after ``Last-Event-ID``
  (from :mod:`myapp.pipeline.event_log`) or a ``snapshot`` of the user's jobs, then live
  events from this process's :class:`~myapp.web.hub.Hub`, each with its ``id:``;
- sends a ``: keepalive`` comment when quiet;
- with ``?job=<id>``, sends only that job and ends after its terminal event.
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

from flask import current_app, request
from flask_login import current_user
from flask_sse import Message, ServerSentEventsBlueprint
from redis.exceptions import RedisError

from myapp import connections
from myapp.db import db
from myapp.errors import NotFound, Unauthenticated, Unavailable
from myapp.job_json import TERMINAL
from myapp.jobs import limits
from myapp.keys import active_key, channel_for
from myapp.models import TrackedJob
from myapp.ordering import is_older
from myapp.pipeline import event_log, line
from myapp.pipeline.line import Line
from myapp.web import metrics
from myapp.web.hub import Hub
from myapp.web.sockets import takes_direct_writes
from myapp.web.subscriber import CLOSE, KEEPALIVE, KEEPALIVE_TEXT
from myapp.wire import Event, parse_id

#: How long a browser waits before it reconnects, in milliseconds.
RETRY_MS = 2000
#: How many jobs a snapshot holds at most, newest first.
SNAPSHOT_LIMIT = 200
#: How many waiting events a stream sends in one write, at most.
BATCH_MOST = 64
#: The answer when Redis does not answer.
STREAM_DOWN = "the event stream is unavailable; try again shortly"


class UserStream(ServerSentEventsBlueprint):
    @property
    def redis(self):
        return connections.get_redis()

    def publish(self, data, type=None, id=None, retry=None, channel="sse"):
        """flask-sse's ``publish``, also logging the event for replay; returns its id."""
        message = Message(data, type=type, id=id, retry=retry).to_dict()
        retention = current_app.config["STREAM_RETENTION_SECONDS"]
        event_id = event_log.append(self.redis, channel, message, retention)
        return event_id.decode() if isinstance(event_id, bytes) else event_id

    def hub(self) -> Hub:
        extensions = current_app.extensions
        if "myapp.web.hub" not in extensions:
            config = current_app.config
            extensions["myapp.web.hub"] = Hub(
                self.redis,
                config["STREAM_QUEUE_SIZE"],
                renew=partial(limits.renew_streams, self.redis, limits.stream_lease_seconds()),
                heartbeat=config["STREAM_HEARTBEAT_SECONDS"],
                figures=metrics.WebFigures(self.redis),
                every_second=Line(
                    self.redis, config["RQ_QUEUE"], config["STREAM_RETENTION_SECONDS"]
                ).tick,
            )
        return extensions["myapp.web.hub"]

    def stream(self):
        """Stream the signed-in user's channel; there is no way to name another."""
        job_id = request.args.get("job")
        row = None
        if job_id is not None:
            row = db.session.get(TrackedJob, job_id)
            if row is None or row.user_id != current_user.id:
                raise NotFound("no such job")
        return self.stream_job(row, user_id=current_user.id)

    def stream_job(self, row: TrackedJob | None, pieces=False, holds=None, user_id=None):
        """The stream of the user's channel, or of one job (``row``) of its owner's:
        with ``pieces``, its pieces too. ``holds(redis)``, asked at each heartbeat,
        ends the stream when it turns false (a share link revoked or expired)."""
        job_id = row.id if row is not None else None
        user_id = row.user_id if row is not None else user_id
        stream_id = uuid.uuid4().hex
        hub = self.hub()
        try:
            limits.open_stream(user_id, stream_id)
        except RedisError as exc:
            raise Unavailable(STREAM_DOWN) from exc
        try:
            # A ?job= stream picks its events: only a whole channel's are written directly.
            direct = job_id is None and takes_direct_writes(request.environ)
            subscriber = hub.subscribe(
                channel_for(user_id), request.environ.get("gunicorn.socket"), direct
            )
            hub.figures.start(hub)
        except RedisError as exc:
            limits.close_stream(self.redis, user_id, stream_id)
            raise Unavailable(STREAM_DOWN) from exc
        subscriber.id = stream_id
        redis = self.redis

        def closed():
            hub.unsubscribe(subscriber)
            try:
                limits.close_stream(redis, user_id, stream_id)
            except RedisError:
                pass  # its lease runs out by itself

        last_id = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
        # A reconnect to a ?job= stream whose job had ended when it was opened.
        had_ended = job_id is not None and last_id is not None and row.status in TERMINAL
        try:
            caught_up = self._catch_up(
                subscriber.channel, user_id, last_id, job_id, had_ended, pieces
            )
        except RedisError as exc:
            closed()
            raise Unavailable(STREAM_DOWN) from exc
        if caught_up is None:
            # The client has seen the end: 204 is what tells an EventSource to
            # stop reconnecting (a stream held open would count against the limit).
            closed()
            return "", 204
        opening, subscriber.sent, done = caught_up
        # The rest needs no request context: none is kept alive for the stream's life.
        response = current_app.response_class(
            _send(subscriber, opening, done, job_id, pieces, holds and partial(holds, redis)),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        # The server closes every response, even one it never started sending.
        response.call_on_close(closed)
        return response

    def _catch_up(
        self, channel, user_id, last_id, job_id, had_ended: bool = False, pieces: bool = False
    ) -> tuple[bytes, tuple, bool] | None:
        """What the client missed, or a snapshot: (the text, its last key, whether
        a ``?job=`` stream has already ended); None when the client reconnects to
        a job that ``had_ended`` and was sent its end."""
        missed = event_log.replay(self.redis, channel, last_id) if last_id else None
        if had_ended and self._was_sent_the_end(channel, job_id, last_id, missed):
            return None
        if missed is not None:
            texts, sent = [], parse_id(last_id)
            for event in missed:
                if _wanted(event, job_id, pieces):
                    texts.append(event.text)
                    if _ends(event, job_id):
                        return b"".join(texts), event.key, True
                sent = event.key
            return b"".join(texts), sent, False
        cut, active = event_log.snapshot_cut(self.redis, channel)
        snapshot = snapshot_jobs(user_id, active, job_id, pieces)
        queue_name = current_app.config["RQ_QUEUE"]
        snapshot["jobs"] = line.annotate(self.redis, queue_name, user_id, snapshot["jobs"])
        ended = any(job["id"] == job_id and job["status"] in TERMINAL for job in snapshot["jobs"])
        snapshot = str(Message(snapshot, type="snapshot", id=cut)).encode()
        return snapshot, parse_id(cut), ended

    def _was_sent_the_end(self, channel, job_id, last_id, missed) -> bool:
        """Whether a client reconnecting to an ended job's stream from ``last_id`` has
        its end: nothing of the end follows ``last_id`` in the log (or, the log being
        past replay, ``last_id`` is the cut of the snapshot it was sent, "0-0" for an
        empty log), and the end has been published. The record is written just before
        the end is published; the end is out once the job has left the active jobs,
        which the script that logs it does."""
        if missed is None:
            cut, _ = event_log.snapshot_cut(self.redis, channel)
            if parse_id(last_id) != parse_id(cut):
                return False
        elif any(_ends(event, job_id) for event in missed):
            return False
        return not self.redis.hexists(active_key(channel), job_id)


def _send(subscriber, opening: bytes, done: bool, job_id, pieces=False, holds=None):
    """The stream's body: the opening, then live events until the client leaves, or
    until ``holds()`` turns false at a heartbeat.

    Events the hub writes itself while the stream waits do not pass here.
    """
    yield f": connected\nretry: {RETRY_MS}\n\n".encode() + opening
    while not done:
        first = subscriber.get()
        if isinstance(first, bytes):  # the rest of a chunk the hub began writing
            try:
                subscriber.sock.sendall(first)
            except OSError:
                return
            continue
        texts, published = [], []
        for event in [first, *subscriber.get_ready(BATCH_MOST)]:
            if event is KEEPALIVE:
                if holds is not None and not _still(holds):
                    done = True
                    break
                texts.append(KEEPALIVE_TEXT)
                continue
            if event is CLOSE:
                done = True
                break
            if event.key > subscriber.sent and _wanted(event, job_id, pieces):
                texts.append(event.text)
                published.append(event.key[0])
                subscriber.sent = event.key
                done = _ends(event, job_id)
                if done:
                    break
        if published:
            subscriber.hub.count_sent(published)
        if texts:
            yield b"".join(texts)


def _still(holds) -> bool:
    try:
        return holds()
    except RedisError:
        return True  # Redis is away: the link was checked when the stream opened


def _wanted(event: Event, job_id: str | None, pieces: bool = False) -> bool:
    if job_id is None:
        return True
    if event.job_id == job_id:  # its state or its output
        return True
    return pieces and event.job is not None and event.job.get("parent") == job_id


def _ends(event: Event, job_id: str | None) -> bool:
    """Whether ``event`` is the end of the one job a stream follows."""
    job = event.job
    return (
        job_id is not None and job is not None and job["id"] == job_id and job["status"] in TERMINAL
    )


def snapshot_jobs(
    user_id: int, active: dict[str, dict[str, Any]], job_id: str | None = None, pieces=False
) -> dict[str, Any]:
    """The user's recent jobs from the database, overlaid with newer live states, and
    ``next_before``: the cursor of ``GET /api/jobs`` for the jobs older than these
    (null when there are none).

    The pieces of a batch or sequence are included while it runs, so a client
    that shows them is right after a reconnect too.
    """
    query = db.select(TrackedJob).filter_by(user_id=user_id).options(TrackedJob.with_children())
    if job_id is not None:
        query = query.filter_by(id=job_id)
    else:
        query = query.where(TrackedJob.parent_id.is_(None))
    rows = list(
        db.session.scalars(
            query.order_by(TrackedJob.created_at.desc(), TrackedJob.id.desc()).limit(
                SNAPSHOT_LIMIT + 1
            )
        )
    )
    more = len(rows) > SNAPSHOT_LIMIT
    rows = rows[:SNAPSHOT_LIMIT]
    next_before = rows[-1].id if more else None
    if job_id is None:
        running = [row for row in rows if row.group_mode and row.status not in TERMINAL]
        rows += [child for row in running for child in row.children]
    elif pieces:
        rows += [child for row in rows for child in row.children]
    jobs = {row.id: row.to_answer() for row in rows}
    for live_id, live in active.items():
        if live_id in jobs and is_older(jobs[live_id], than=live):
            jobs[live_id] = {**live, "has_output": jobs[live_id]["has_output"]}
    ordered = sorted(jobs.values(), key=lambda job: (job["created_at"], job["id"]), reverse=True)
    return {"jobs": ordered, "next_before": next_before}


sse = UserStream("sse", __name__)
sse.add_url_rule("", endpoint="stream", view_func=sse.stream)


@sse.before_request
def _require_user():
    if not current_user.is_authenticated:
        raise Unauthenticated
