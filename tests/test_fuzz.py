"""Generated requests, valid and broken, against the job API (hypothesis).

Every answer must be below 500; every refusal a 4xx with a JSON error; and a
refused request must leave no row in the database and no job in RQ, while an
accepted one adds exactly its rows and jobs. The app under test sends its jobs to
a queue of its own that no worker takes from, so counting that queue is exact.
"""

from __future__ import annotations

import io
import json
import uuid

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from myapp.connections import get_queue
from myapp.db import db
from myapp.errors import MissingUpload
from myapp.jobs import uploads
from myapp.models import TrackedJob, Upload, User

EXAMPLES = 1200

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# CSV cells and names a spreadsheet would run as formulas, or that break things.
nasty_text = st.sampled_from(
    ["=HYPERLINK(\"http://x\",\"y\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(1)", "\x00", "",
     " ", "\ud800", "a" * 5000, "<script>alert(1)</script>", "名前", "\r\n"]
)  # fmt: skip
text = st.text(max_size=40) | nasty_text


def maybe(value_strategy):
    """A valid-looking value, or any JSON value in its place."""
    return st.one_of(value_strategy, value_strategy, json_values)


def params_with(required: dict, optional: dict):
    """Dicts of these fields, sometimes missing some, sometimes with an extra one."""
    return st.fixed_dictionaries(
        {name: maybe(value) for name, value in required.items()},
        optional={**{name: maybe(value) for name, value in optional.items()},
                  "extra": json_values},
    )  # fmt: skip


item = params_with(
    {"name": text, "size_kb": st.integers(-10, 2_000_000)}, {"reject": st.booleans()}
)
PARAMS = {
    "process_run": params_with(
        {"steps": st.integers(-5, 20_000), "step_seconds": st.floats(-1, 20)}, {}
    ),
    "import_contacts": params_with(
        {"rows": st.lists(params_with({"name": text, "email": text}, {"phone": text}), max_size=4)},
        {"upload": st.uuids().map(str) | text},  # only the server may name an upload
    ),  # fmt: skip
    "publish_album": params_with(
        {"items": st.lists(item, max_size=4)},
        {"failure_rate": st.floats(-1, 2), "latency_ms": st.integers(-10, 100_000)},
    ),
    "generate_profile": params_with(
        {},
        {
            "name": text,
            "seed": st.integers(-5, 2**40),
            "stage_seconds": st.floats(-1, 40),
            "fail_stage": st.sampled_from(["traits", "background", "summary", "other"]),
        },
    ),  # fmt: skip
}
kinds = st.sampled_from([*PARAMS, "publish_album.upload", "generate_profile.traits"]) | text


@st.composite
def job_bodies(draw):
    kind = draw(kinds)
    body = {"kind": kind, "params": draw(PARAMS.get(kind, json_values))}
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.text(max_size=8))] = draw(json_values)
    if draw(st.integers(0, 19)) == 0:
        body = draw(json_values)
    return json.dumps(body).encode()  # NaN and Infinity are not JSON: good bad input


raw_bodies = st.one_of(
    st.binary(max_size=200),  # mostly invalid UTF-8
    st.integers(1, 200_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 50_000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    st.sampled_from([b"", b"null", b"1e999999", b"9" * 5000, b'{"kind": "process_run"',
                     b'{"kind":"process_run","params":{"steps":1e308,"step_seconds":0}}']),
)  # fmt: skip
csv_files = st.one_of(
    st.binary(max_size=300),
    st.lists(st.lists(text, min_size=1, max_size=4), max_size=6).map(
        lambda rows: "\n".join(",".join(row) for row in [["name", "email"], *rows]).encode(
            "utf-8", "surrogatepass"
        )
    ),
    st.sampled_from([b"", b"name,email\n", b"name;email\nA;a@b.io\n"]),
)


@st.composite
def requests_(draw):
    """(content type, body) of a POST /api/jobs."""
    shape = draw(st.integers(0, 9))
    if shape <= 5:
        return "application/json", draw(job_bodies())
    if shape <= 7:
        return draw(st.sampled_from(["application/json", "text/plain", ""])), draw(raw_bodies)
    kind = draw(st.sampled_from(["import_contacts", "process_run", ""]))
    return "multipart/form-data", {"kind": kind, "file": draw(csv_files)}


def _fuzz_app(service_env, **config):
    from myapp import create_app

    app = create_app(
        {
            "TESTING": True,
            "REDIS_URL": service_env["REDIS_URL"],
            "DATABASE_URL": service_env["DATABASE_URL"],
            "SECRET_KEY": "test",
            "RQ_QUEUE": f"fuzz-{uuid.uuid4().hex[:8]}",
            "MAX_ACTIVE_JOBS_PER_USER": 1_000_000,
            "MAX_RUNNING_JOBS_PER_USER": 1_000_000,  # none held back by the rate limit
            "MAX_JOBS_PER_HOUR": 1_000_000,
            **config,
        }
    )
    with app.app_context():
        user = User(name=f"fuzz-{uuid.uuid4().hex[:8]}")
        user.set_password("x")
        token = user.new_token()
        db.session.add(user)
        db.session.commit()
        user_id = user.id
    yield app, user_id, {"Authorization": f"Bearer {token}"}
    with app.app_context():
        get_queue().empty()
        db.engine.dispose()


@pytest.fixture(scope="module")
def fuzz_app(service_env):
    yield from _fuzz_app(service_env)


@pytest.fixture(scope="module")
def quota_app(service_env):
    """Quotas that the generated requests soon reach: 3 jobs an hour, 300 bytes stored."""
    yield from _fuzz_app(service_env, MAX_JOBS_PER_HOUR=3, MAX_STORED_BYTES_PER_USER=300)


def counts(app, user_id) -> tuple[int, int, int]:
    """(the user's rows, the fuzz queue's jobs: queued or waiting on another, the
    user's uploads)."""
    with app.app_context():
        queue = get_queue()
        rows = db.session.scalar(db.select(db.func.count(TrackedJob.id)).filter_by(user_id=user_id))
        stored = db.session.scalar(db.select(db.func.count(Upload.id)).filter_by(user_id=user_id))
        return rows, queue.count + queue.deferred_job_registry.count, stored


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests on every run: a failure can be replayed
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip
@given(request=requests_())
def test_no_request_breaks_the_api_or_leaves_half_a_job(fuzz_app, request):
    check_request(fuzz_app, request)


@settings(
    max_examples=EXAMPLES // 6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip
@given(request=requests_())
def test_past_a_quota_no_request_breaks_the_api_or_leaves_half_a_job(quota_app, request):
    check_request(quota_app, request, refusals=(400, 413, 429))


def check_request(fuzz, request, refusals=(400, 413)) -> None:
    """Below 500; a refusal is JSON and leaves nothing; a 202 adds exactly its job."""
    app, user_id, headers = fuzz
    content_type, body = request
    client = app.test_client()
    before = counts(app, user_id)
    if content_type == "multipart/form-data":
        data = {"kind": body["kind"], "file": (io.BytesIO(body["file"]), "contacts.csv")}
        response = client.post("/api/jobs", data=data, headers=headers)
    else:
        response = client.post(
            "/api/jobs", data=body, headers={**headers, "Content-Type": content_type}
        )
    after = counts(app, user_id)
    event(f"answered {response.status_code}")  # shown by --hypothesis-show-statistics

    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    if response.status_code >= 400:
        assert response.status_code in refusals, response.get_data(as_text=True)[:300]
        assert response.is_json, response.get_data(as_text=True)[:300]
        assert isinstance(response.json["error"], str) and response.json["error"]
        assert after == before
    else:
        assert response.status_code == 202
        job = response.json
        pieces = len(job.get("children", []))
        upload = job["kind"] == "import_contacts"
        assert after == (before[0] + 1 + pieces, before[1] + (pieces or 1), before[2] + upload)


def test_params_cannot_name_another_users_upload(fuzz_app, service_env):
    """Only the server makes upload references: a client's ``upload`` is refused."""
    app, user_id, headers = fuzz_app
    with app.app_context():
        other = User(name=f"other-{uuid.uuid4().hex[:8]}")
        other.set_password("x")
        db.session.add(other)
        db.session.commit()
        theirs = uploads.new(other.id, str(uuid.uuid4()), uploads.pack([{"name": "x"}]))
        db.session.commit()
        upload_id = theirs.id
    before = counts(app, user_id)
    for params in (
        {"upload": upload_id},
        {"upload": upload_id, "rows": [{"name": "a", "email": "a@b.io"}]},
    ):
        response = app.test_client().post(
            "/api/jobs", json={"kind": "import_contacts", "params": params}, headers=headers
        )
        assert response.status_code == 400, response.json
        assert "params.upload" in response.json["error"]
    assert counts(app, user_id) == before
    # And a job that names it anyway (enqueued by hand) cannot read it.
    with app.app_context(), pytest.raises(MissingUpload):
        uploads.load(upload_id, user_id)
