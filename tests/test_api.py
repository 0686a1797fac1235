import uuid

import pytest
from sqlalchemy import event

from myapp.db import db
from myapp.job_json import parse_time
from tests.jobs import PROCESS
from tests.records import rows_of, rq_jobs_of


def test_unauthenticated_requests_get_401_json(client):
    for method, path in [("get", "/api/jobs"), ("post", "/api/jobs"), ("get", "/api/jobs/x")]:
        response = getattr(client, method)(path)
        assert response.status_code == 401
        assert response.json == {"error": "authentication required"}


def test_unknown_token_is_refused(client):
    response = client.get("/api/jobs", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    assert "error" in response.json


def test_start_a_job(app, client, alice):
    response = client.post("/api/jobs", json=PROCESS, headers=alice.headers)
    assert response.status_code == 202
    job = response.json
    assert job["kind"] == "process_run"
    assert job["status"] == "queued"
    assert job["progress"] == {
        "done": None, "total": None, "percent": None, "message": None, "eta_seconds": None
    }  # fmt: skip
    assert job["retry"] is None
    assert parse_time(job["created_at"]) == parse_time(job["updated_at"])
    assert job["started_at"] is None and job["ended_at"] is None
    assert job["error"] is None and job["result"] is None
    with app.app_context():
        from myapp.connections import get_queue

        rq_job = get_queue().fetch_job(job["id"])
        assert rq_job.kwargs == PROCESS["params"]
        assert rq_job.meta["kind"] == "process_run"

    fetched = client.get(f"/api/jobs/{job['id']}", headers=alice.headers)
    assert fetched.status_code == 200
    assert fetched.json["id"] == job["id"]
    assert fetched.json["has_output"] is False  # nothing ran yet


def test_list_is_newest_first_and_only_mine(client, accounts, alice):
    bob = accounts.create()
    ids = [
        client.post("/api/jobs", json=PROCESS, headers=alice.headers).json["id"] for _ in range(3)
    ]
    client.post("/api/jobs", json=PROCESS, headers=bob.headers)
    listed = [job["id"] for job in client.get("/api/jobs", headers=alice.headers).json["jobs"]]
    assert listed == ids[::-1]


def test_another_users_job_is_404(client, accounts, alice):
    bob = accounts.create()
    job_id = client.post("/api/jobs", json=PROCESS, headers=bob.headers).json["id"]
    response = client.get(f"/api/jobs/{job_id}", headers=alice.headers)
    assert response.status_code == 404
    assert response.json == {"error": "no such job"}


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "nope", "params": {}},
        {"kind": "process_run", "params": {"steps": 0, "step_seconds": 0}},
        {"kind": "process_run", "params": {"steps": 1, "step_seconds": 99}},
        {"kind": "process_run"},
        ["process_run"],
    ],
)
def test_bad_requests_enqueue_and_write_nothing(app, client, alice, body):
    keys, rows = rq_jobs_of(app, alice), rows_of(app, alice)
    response = client.post("/api/jobs", json=body, headers=alice.headers)
    assert response.status_code == 400
    assert response.json["error"]
    assert rq_jobs_of(app, alice) == keys
    assert rows_of(app, alice) == rows


def test_body_must_be_json(client, alice):
    response = client.post("/api/jobs", data="steps=3", headers=alice.headers)
    assert response.status_code == 400
    assert "JSON" in response.json["error"]


def test_unknown_api_path_is_json_404(client, alice):
    response = client.get("/api/nothing-here", headers=alice.headers)
    assert response.status_code == 404
    assert "error" in response.json


def test_redis_down_answers_503_and_keeps_no_row(make_app, alice):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    before = rows_of(app, alice)
    response = app.test_client().post("/api/jobs", json=PROCESS, headers=alice.headers)
    assert response.status_code == 503
    assert "nothing was started" in response.json["error"]
    assert rows_of(app, alice) == before


def test_an_oversized_body_is_refused_with_413(make_app, alice):
    client = make_app(MAX_CONTENT_LENGTH=1024).test_client()
    body = {"kind": "process_run", "params": {"steps": 1, "step_seconds": 0}, "pad": "x" * 2048}
    response = client.post("/api/jobs", json=body, headers=alice.headers)
    assert response.status_code == 413
    assert "error" in response.json


def test_the_openapi_description_matches_the_kinds(client):
    from myapp.jobs import KINDS

    spec = client.get("/api/openapi.json").json  # public: it describes, it reveals nothing
    assert spec["openapi"].startswith("3.1")
    assert {"/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/cancel", "/stream"} <= set(
        spec["paths"]
    )
    schemas = spec["components"]["schemas"]
    shapes = [ref["$ref"].rsplit("/", 1)[1] for ref in schemas["JobRequest"]["oneOf"]]
    public = sorted(name for name, kind in KINDS.items() if not kind.internal)
    assert sorted(schemas[shape]["properties"]["kind"]["const"] for shape in shapes) == public
    process = schemas["Start_process_run"]["properties"]["params"]["$ref"].rsplit("/", 1)[1]
    steps = schemas[process]["properties"]["steps"]
    assert (steps["minimum"], steps["maximum"]) == (1, 10_000)
    assert set(schemas[process]["required"]) == {"steps", "step_seconds"}


def start_counting_sql(app, client, account) -> list[str]:
    """Start a job; the kinds of SQL statement (``SELECT``, ``INSERT``) it ran."""
    with app.app_context():
        engine = db.engine
    statements = []

    def record(_conn, _cursor, statement, *_):
        statements.append(statement.split()[0].upper())

    event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.post("/api/jobs", json=PROCESS, headers=account.headers)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 202
    return statements


def test_starting_a_job_reads_back_nothing_it_wrote(app, client, alice):
    """One SELECT (the token's user; the quotas are counted in Redis), the INSERT, and
    no reload of the new row."""
    assert start_counting_sql(app, client, alice) == ["SELECT", "INSERT"]


def test_a_token_seen_before_starts_a_job_with_the_insert_alone(app, client, alice):
    """Its user is remembered (as of the tokens' generation in Redis): no SELECT."""
    assert client.post("/api/jobs", json=PROCESS, headers=alice.headers).status_code == 202
    assert start_counting_sql(app, client, alice) == ["INSERT"]


@pytest.fixture
def idle_client(make_app):
    """A client whose jobs go to a queue no worker takes from: they stay queued."""
    return make_app(
        RQ_QUEUE=f"idle-{uuid.uuid4().hex[:8]}", MAX_ACTIVE_JOBS_PER_USER=20
    ).test_client()


def pages(client, account, query="", limit=3) -> list[list[str]]:
    """Every page of the list, following ``next_before``; each page's ids."""
    found, before = [], None
    while True:
        cursor = f"&before={before}" if before else ""
        answer = client.get(f"/api/jobs?limit={limit}{query}{cursor}", headers=account.headers)
        assert answer.status_code == 200, answer.json
        found.append([job["id"] for job in answer.json["jobs"]])
        before = answer.json["next_before"]
        if before is None:
            return found
        assert before == found[-1][-1]


def test_the_list_pages_with_a_cursor_through_every_job_once(idle_client, accounts, alice):
    bob = accounts.create()
    ids = [
        idle_client.post("/api/jobs", json=PROCESS, headers=alice.headers).json["id"]
        for _ in range(7)
    ]
    idle_client.post("/api/jobs", json=PROCESS, headers=bob.headers)
    found = pages(idle_client, alice)
    assert [len(page) for page in found] == [3, 3, 1]
    assert [job_id for page in found for job_id in page] == ids[::-1]
    everything = idle_client.get("/api/jobs", headers=alice.headers).json
    assert [job["id"] for job in everything["jobs"]] == ids[::-1]
    assert everything["next_before"] is None


def test_the_list_filters_by_status_and_kind(idle_client, alice):
    ids = [
        idle_client.post("/api/jobs", json=PROCESS, headers=alice.headers).json["id"]
        for _ in range(5)
    ]
    album = {"kind": "publish_album", "params": {"items": [{"name": "a.jpg", "size_kb": 1}]}}
    batch = idle_client.post("/api/jobs", json=album, headers=alice.headers).json["id"]
    for job_id in ids[:2]:
        assert (
            idle_client.post(f"/api/jobs/{job_id}/cancel", headers=alice.headers).status_code == 202
        )
    canceled = pages(idle_client, alice, "&status=canceled", limit=1)
    assert [job_id for page in canceled for job_id in page] == ids[1::-1]
    waiting = pages(idle_client, alice, "&status=queued,started&kind=process_run")
    assert [job_id for page in waiting for job_id in page] == ids[:1:-1]
    assert pages(idle_client, alice, "&kind=publish_album") == [[batch]]


@pytest.mark.parametrize(
    "query, message",
    [
        ("limit=0", "limit"), ("limit=201", "limit"), ("limit=x", "limit"), ("limit=-1", "limit"),
        ("status=running", "status"), ("status=", "status"), ("kind=nope", "kind"),
        ("before=no-such-job", "before"),
    ],
)  # fmt: skip
def test_bad_list_queries_get_a_clear_400(client, alice, query, message):
    answer = client.get(f"/api/jobs?{query}", headers=alice.headers)
    assert answer.status_code == 400
    assert answer.json["error"].startswith(message)


def test_a_cursor_from_another_user_or_a_piece_is_refused(idle_client, accounts, alice):
    bob = accounts.create()
    theirs = idle_client.post("/api/jobs", json=PROCESS, headers=bob.headers).json["id"]
    album = {"kind": "publish_album", "params": {"items": [{"name": "a.jpg", "size_kb": 1}]}}
    piece = idle_client.post("/api/jobs", json=album, headers=alice.headers).json["children"][0]
    for cursor in (theirs, piece):
        answer = idle_client.get(f"/api/jobs?before={cursor}", headers=alice.headers)
        assert answer.status_code == 400
        assert answer.json["error"].startswith("before")
