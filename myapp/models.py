"""Database models: users, their API tokens, and the durable record of each job."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Update,
    case,
    event,
    false,
    update,
)
from sqlalchemy.orm import (
    Mapped,
    Session,
    column_property,
    mapped_column,
    object_session,
    relationship,
    selectinload,
)
from werkzeug.security import check_password_hash, generate_password_hash

from myapp import job_json
from myapp.connections import get_redis
from myapp.db import db
from myapp.keys import TOKENS
from myapp.ordering import FIRST, version_of


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=job_json.utcnow)
    #: Stored in the session at sign-in; a session holding another number is signed
    #: out. Bumped on sign-out, ``flask user revoke`` and a new password, so cookies
    #: copied before then stop working.
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    def set_password(self, password: str) -> None:
        """Set a new password; sessions signed in with the old one end."""
        self.password_hash = generate_password_hash(password)
        self.end_sessions()

    def end_sessions(self) -> None:
        """Sign out every session of this user (committed by the caller)."""
        self.session_version = (self.session_version or 0) + 1

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def new_token(self) -> str:
        """Create an API token; only its hash is stored, so it is shown once."""
        token = secrets.token_urlsafe(32)
        self.tokens.append(ApiToken(token_hash=ApiToken.hash(token)))
        return token


class ApiToken(db.Model):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=job_json.utcnow)

    user: Mapped[User] = relationship(back_populates="tokens")

    @staticmethod
    def hash(token: str) -> str:
        """Tokens are 256 random bits, so a plain SHA-256 is enough to store them."""
        return hashlib.sha256(token.encode()).hexdigest()


#: Set in a session's ``info`` by a flush that deleted a token or a user.
_TOKENS_CHANGED = "myapp.tokens_changed"


@event.listens_for(ApiToken, "after_delete")
@event.listens_for(User, "after_delete")
def _note_deleted_tokens(_mapper, _connection, gone: ApiToken | User) -> None:
    # A mapper's event: it sees the tokens a flush deletes as orphans, too (a revoke's).
    object_session(gone).info[_TOKENS_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _new_token_generation(session: Session) -> None:
    """Once tokens or users are deleted for good, no web process may keep answering for
    them from memory: they remember a token's user only as of the value of
    :data:`myapp.keys.TOKENS`, replaced here. Redis not answering fails the commit's
    caller (``flask user revoke`` says so), though the database has committed."""
    if session.info.pop(_TOKENS_CHANGED, False):
        get_redis().set(TOKENS, secrets.token_hex(16))


@event.listens_for(Session, "after_soft_rollback")
def _forget_deleted_tokens(session: Session, _previous) -> None:
    session.info.pop(_TOKENS_CHANGED, None)


class TrackedJob(db.Model):
    """A job as users see it, kept after RQ forgets it and across Redis restarts."""

    __tablename__ = "tracked_jobs"
    __table_args__ = (
        Index("ix_tracked_jobs_user_created", "user_id", "created_at"),
        Index("ix_tracked_jobs_ended_at", "ended_at"),  # for the retention
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(50))
    #: Deferred: nothing that lists or streams jobs shows them, and they can be
    #: large; they load when read (a retry enqueues them again).
    params: Mapped[dict[str, Any]] = mapped_column(JSON, deferred=True)
    status: Mapped[str] = mapped_column(String(20))
    progress_done: Mapped[int | None]
    progress_total: Mapped[int | None]
    progress_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    #: The order of the job's states (:mod:`myapp.ordering`): the record keeps the
    #: newest it was given.
    version: Mapped[int] = mapped_column(BigInteger, default=FIRST)
    #: What the job wrote with ``progress.output`` (:mod:`myapp.pipeline.output`),
    #: at most ``PROGRESS_DB_INTERVAL`` old while it runs, whole once it ended.
    output: Mapped[str | None] = mapped_column(Text, deferred=True)
    output_truncated: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: Whether the record holds any output, read with the row (not the text): the page
    #: offers to show an ended job's output only when there is some.
    has_output: Mapped[bool] = column_property(output.column.is_not(None))
    #: Grows when the owner revokes the job's share links: every link names the
    #: generation it was made in (:mod:`myapp.web.share`).
    share_generation: Mapped[int] = mapped_column(default=0, server_default="0")
    #: The JSON the record's state was published as, when a worker or a batch's
    #: aggregate made it: it holds what no column does (the ETA), so the API
    #: answers with what the stream sent for the same version.
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[Any | None] = mapped_column(JSON)
    #: Where a resumable job got to (see :mod:`myapp.steps`), saved with its work.
    checkpoint: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: A job in pieces (:mod:`myapp.pipeline.aggregate`): "batch" or "sequence" on the parent,
    #: whose children point to it and are ordered by ``position``.
    group_mode: Mapped[str | None] = mapped_column(String(10))
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("tracked_jobs.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int | None]
    #: A child's label on the page: the item's or the stage's name.
    name: Mapped[str | None] = mapped_column(String(200))
    #: A child's share of its parent's bar (a sequence weighs its stages); the
    #: record keeps it so the parent's aggregate can be rebuilt from records alone.
    weight: Mapped[int | None]
    #: A parent's weighted percent; a plain job's comes from done and total.
    progress_percent: Mapped[float | None]
    #: The RQ queue the job is enqueued on (None: made before this was kept, the
    #: default queue): only that queue's reaper rebuilds it (:mod:`myapp.worker.reaper`).
    queue: Mapped[str | None] = mapped_column(String(100))

    children: Mapped[list[TrackedJob]] = relationship(
        order_by="TrackedJob.position", passive_deletes=True
    )

    def to_dict(self) -> dict[str, Any]:
        """The job as JSON, the same shape the worker publishes.

        A parent also lists its children and counts them by status, which needs
        ``children`` loaded (``selectinload``); see :func:`with_children`.
        """
        if self.state is not None and self.state.get("version") == self.version:
            return self.state
        data = job_json.job_json(
            id=self.id,
            kind=self.kind,
            status=self.status,
            version=self.version,
            done=self.progress_done,
            total=self.progress_total,
            message=self.progress_message,
            created_at=self.created_at,
            started_at=self.started_at,
            ended_at=self.ended_at,
            updated_at=self.updated_at,
            error=self.error,
            result=self.result,
            parent=self.parent_id,
            name=self.name,
            percent=self.progress_percent,
        )
        if self.group_mode:
            data["children"] = [child.id for child in self.children]
            data["counts"] = job_json.counts(child.status for child in self.children)
        return data

    def to_answer(self) -> dict[str, Any]:
        """The job as the API and the snapshot answer: its state, and whether it wrote
        output. (Its place in line is read from Redis: :func:`myapp.pipeline.line.annotate`.)"""
        return {**self.to_dict(), "has_output": self.has_output}

    @staticmethod
    def with_children():
        """The loader option that lets :meth:`to_dict` list a parent's children."""
        return selectinload(TrackedJob.children)

    @staticmethod
    def record(job: dict[str, Any]) -> Update:
        """The UPDATE that writes a job state (as from :func:`myapp.job_json.job_json`)
        into its row, unless the row holds a newer one (:mod:`myapp.ordering`).

        One statement of one shape, whatever the state: SQLAlchemy compiles it once
        per process, and a worker compiles it before it forks its work horses
        (:meth:`myapp.worker.tracking.TrackingWorker.register_birth`)."""
        progress = job["progress"]
        percent = case(
            (TrackedJob.group_mode.is_not(None), progress["percent"]),
            else_=TrackedJob.progress_percent,
        )  # a plain job's comes from done and total
        return (
            update(TrackedJob)
            .where(TrackedJob.id == job["id"], TrackedJob.version <= version_of(job))
            .values(
                status=job["status"],
                version=job["version"],
                state=job,
                progress_done=progress["done"],
                progress_total=progress["total"],
                progress_message=progress["message"],
                progress_percent=percent,
                started_at=job_json.parse_time(job["started_at"]),
                ended_at=job_json.parse_time(job["ended_at"]),
                updated_at=job_json.parse_time(job["updated_at"]),
                error=job["error"],
                result=job["result"],
            )
        )


class Upload(db.Model):
    """Rows a user uploaded for a job, stored once, outside the job's record and RQ's
    copy of it: the job's params hold only ``{"upload": id}`` (see :mod:`myapp.jobs.uploads`).
    """

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: The job that reads it; deleted with that job's record.
    job_id: Mapped[str] = mapped_column(String(36), index=True)
    #: Bytes stored (``data``'s length), counted against ``MAX_STORED_BYTES_PER_USER``.
    size_bytes: Mapped[int]
    #: The validated rows as zlib-compressed JSON; deferred, as only the job reads it.
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(default=job_json.utcnow)


class Contact(db.Model):
    """A contact imported by ``import_contacts``; (job, row) is unique, so a resumed
    import can never write a row twice."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("job_id", "row_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str] = mapped_column(String(36))
    row_number: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=job_json.utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "job_id": self.job_id,
            "row": self.row_number,
            "created_at": job_json.iso(self.created_at),
        }


class Profile(db.Model):
    """A character made by ``generate_profile``: one per finished job."""

    __tablename__ = "profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    traits: Mapped[dict[str, Any]] = mapped_column(JSON)
    background: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=job_json.utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "name": self.name,
            "traits": self.traits,
            "background": self.background,
            "summary": self.summary,
            "created_at": job_json.iso(self.created_at),
        }
