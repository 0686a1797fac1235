"""Per-user limits on what one user may start and store (see :mod:`myapp.jobs.limits`)."""

import io
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from redis import Redis
from sqlalchemy import event
from sqlalchemy.engine import make_url

from myapp.db import db
from myapp.jobs import uploads
from myapp.jobs.submit import validate
from myapp.keys import admitted_key, channel_for
from myapp.models import TrackedJob, Upload
from tests.jobs import PROCESS
from tests.records import id_of, rows_of
from tests.sessions import csrf_token, sign_in

CONTACTS = {
    "kind": "import_contacts",
    "params": {"rows": [{"name": f"P{i}", "email": f"p{i}@example.com"} for i in range(2000)]},
}


@pytest.fixture
def idle_app(make_app):
    """An app whose jobs go to a queue of their own, that no worker takes from."""

    def make(**config):
        return make_app(RQ_QUEUE=f"idle-{uuid.uuid4().hex[:8]}", **config)

    return make


def stored_size(body) -> int:
    """The bytes the upload of this import stores."""
    return len(uploads.pack(validate(body)[1]["rows"]))


def uploads_of(app, account) -> int:
    with app.app_context():
        return db.session.scalar(
            db.select(db.func.count(Upload.id)).where(Upload.user_id == id_of(account))
        )


def selects_during(app, call) -> list[str]:
    """The SQL statements ``call()`` runs."""
    statements = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    return statements


def test_listing_jobs_reads_neither_params_nor_uploads(idle_app, alice):
    app = idle_app()
    client = app.test_client()
    assert client.post("/api/jobs", json=CONTACTS, headers=alice.headers).status_code == 202
    listed = []
    statements = selects_during(
        app, lambda: listed.append(client.get("/api/jobs", headers=alice.headers))
    )
    assert listed[0].status_code == 200 and len(listed[0].json["jobs"]) == 1
    jobs_selects = [s for s in statements if "FROM tracked_jobs" in s]
    assert jobs_selects, statements
    assert not any("tracked_jobs.params" in s for s in jobs_selects), jobs_selects
    assert not any("uploads" in s for s in statements), statements
    with app.app_context():
        row = db.session.scalar(db.select(TrackedJob).filter_by(user_id=id_of(alice)))
        assert set(row.params) == {"upload"}  # the rows are not in the record at all


class CountingBody(io.RawIOBase):
    """A request body of ``size`` bytes that counts what the server reads of it."""

    def __init__(self, size: int):
        self.size, self.position, self.read_bytes = size, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True  # the test client measures the body by seeking to its end

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = offset if whence == 0 else self.size + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer) -> int:
        count = max(0, min(len(buffer), self.size - self.position))
        buffer[:count] = b"x" * count
        self.position += count
        self.read_bytes += count
        return count


def post_unread(client, content_type: str, headers: dict) -> tuple[object, int]:
    """POST 40 MB of body to ``/api/jobs``: the answer, and the bytes the server read."""
    body = CountingBody(40 * 2**20)
    response = client.post(
        "/api/jobs",
        input_stream=body,
        content_length=body.size,
        content_type=content_type,
        headers=headers,
    )
    return response, body.read_bytes


@pytest.mark.parametrize("content_type", ["application/json", "multipart/form-data; boundary=b"])
def test_an_over_limit_user_is_refused_before_the_body_is_read(idle_app, alice, content_type):
    app = idle_app(MAX_ACTIVE_JOBS_PER_USER=1, MAX_CONTENT_LENGTH=48 * 2**20)
    client = app.test_client()
    assert client.post("/api/jobs", json=PROCESS, headers=alice.headers).status_code == 202
    response, read = post_unread(client, content_type, alice.headers)
    assert response.status_code == 429, response.get_data(as_text=True)[:300]
    assert "1 active jobs" in response.json["error"]
    assert read == 0


def test_a_signed_in_page_upload_is_refused_before_it_is_read(idle_app, alice):
    """The page's uploads carry a session and the CSRF token in a header: the token is
    checked without reading the body, and the limit is checked before the body is."""
    client = idle_app(MAX_ACTIVE_JOBS_PER_USER=1, MAX_CONTENT_LENGTH=48 * 2**20).test_client()
    sign_in(client, alice)
    token = csrf_token(client)  # the signed-in page's
    assert client.post("/api/jobs", json=PROCESS, headers={"X-CSRFToken": token}).status_code == 202
    response, read = post_unread(client, "multipart/form-data; boundary=b", {"X-CSRFToken": token})
    assert response.status_code == 429, response.get_data(as_text=True)[:300]
    assert read == 0
    # Without the token it is still refused.
    response, _ = post_unread(client, "application/json", {})
    assert response.status_code == 400 and "CSRF" in response.json["error"]


def test_the_hourly_quota_answers_429_and_starts_nothing(idle_app, alice):
    client = idle_app(MAX_JOBS_PER_HOUR=2).test_client()
    app = client.application
    for _ in range(2):
        assert client.post("/api/jobs", json=PROCESS, headers=alice.headers).status_code == 202
    before = rows_of(app, alice)
    response = client.post("/api/jobs", json=PROCESS, headers=alice.headers)
    assert response.status_code == 429
    assert "2 jobs this hour" in response.json["error"]
    assert rows_of(app, alice) == before


def test_the_stored_bytes_quota_answers_413_and_stores_nothing(idle_app, alice):
    size = stored_size(CONTACTS)
    client = idle_app(MAX_STORED_BYTES_PER_USER=size * 3 // 2).test_client()
    app = client.application
    assert client.post("/api/jobs", json=CONTACTS, headers=alice.headers).status_code == 202
    before = rows_of(app, alice), uploads_of(app, alice)
    response = client.post("/api/jobs", json=CONTACTS, headers=alice.headers)
    assert response.status_code == 413
    assert "your uploads would take" in response.json["error"]
    assert (rows_of(app, alice), uploads_of(app, alice)) == before
    # A job that stores nothing still starts.
    assert client.post("/api/jobs", json=PROCESS, headers=alice.headers).status_code == 202


def test_an_upload_is_refused_before_it_is_read_when_storage_is_full(idle_app, alice):
    size = stored_size(CONTACTS)
    client = idle_app(MAX_STORED_BYTES_PER_USER=size).test_client()
    assert client.post("/api/jobs", json=CONTACTS, headers=alice.headers).status_code == 202
    response, read = post_unread(client, "multipart/form-data; boundary=b", alice.headers)
    assert response.status_code == 413 and "error" in response.json
    assert read == 0


@pytest.fixture
def redis_without_hset(app):
    """The test Redis as a user that may not write hashes: RQ cannot store a job,
    while the Lua script that takes a user's place still runs."""
    admin = Redis.from_url(app.config["REDIS_URL"])
    name = f"nohset-{uuid.uuid4().hex[:8]}"
    admin.execute_command("ACL", "SETUSER", name, "on", ">pw", "~*", "allchannels", "+@all",
                          "-hset", "-hmset")  # fmt: skip
    url = make_url(app.config["REDIS_URL"]).set(username=name, password="pw")
    yield url.render_as_string(hide_password=False)
    admin.execute_command("ACL", "DELUSER", name)


def test_a_job_redis_refuses_gives_back_its_place_and_keeps_no_row(
    make_app, alice, redis_without_hset
):
    app = make_app(REDIS_URL=redis_without_hset, MAX_ACTIVE_JOBS_PER_USER=1)
    client = app.test_client()
    before = rows_of(app, alice), uploads_of(app, alice)
    for body in (PROCESS, CONTACTS):  # twice past a limit of one: the place came back
        response = client.post("/api/jobs", json=body, headers=alice.headers)
        assert response.status_code == 503, response.get_data(as_text=True)[:300]
        assert "nothing was started" in response.json["error"]
    assert (rows_of(app, alice), uploads_of(app, alice)) == before
    with app.app_context():
        admitted = admitted_key(channel_for(id_of(alice)))
    assert Redis.from_url(app.config["REDIS_URL"]).scard(admitted) == 0


def test_a_retry_redis_refuses_gives_back_its_place(make_app, alice, redis_without_hset):
    queue = f"idle-{uuid.uuid4().hex[:8]}"
    client = make_app(RQ_QUEUE=queue).test_client()
    job = client.post("/api/jobs", json=PROCESS, headers=alice.headers).json
    assert client.post(f"/api/jobs/{job['id']}/cancel", headers=alice.headers).status_code == 202
    refused = make_app(REDIS_URL=redis_without_hset, RQ_QUEUE=queue, MAX_ACTIVE_JOBS_PER_USER=1)
    for _ in range(2):
        response = refused.test_client().post(f"/api/jobs/{job['id']}/retry", headers=alice.headers)
        assert response.status_code == 503, response.get_data(as_text=True)[:300]
    assert client.get(f"/api/jobs/{job['id']}", headers=alice.headers).json["status"] == "canceled"
    with refused.app_context():
        admitted = admitted_key(channel_for(id_of(alice)))
    assert Redis.from_url(refused.config["REDIS_URL"]).scard(admitted) == 0


def test_requests_that_arrive_together_start_no_more_than_the_hour_allows(idle_app, alice):
    app = idle_app(MAX_JOBS_PER_HOUR=3, MAX_ACTIVE_JOBS_PER_USER=50)
    barrier = threading.Barrier(10)

    def submit(_):
        client = app.test_client()
        barrier.wait()
        return client.post("/api/jobs", json=PROCESS, headers=alice.headers).status_code

    with ThreadPoolExecutor(10) as pool:
        answers = sorted(pool.map(submit, range(10)))
    assert answers == [202] * 3 + [429] * 7
    assert rows_of(app, alice) == 3
