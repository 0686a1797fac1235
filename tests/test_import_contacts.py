"""``import_contacts``: what is refused, CSV uploads, and real imports on the worker,
including one whose work horse is killed half way and that resumes at its cursor."""

import io
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import requests
from redis import Redis
from rq import Worker

from myapp.connections import get_queue
from myapp.db import db
from myapp.errors import InvalidJob
from myapp.job_json import TERMINAL
from myapp.jobs import import_contacts, uploads
from myapp.jobs.submit import validate
from myapp.models import Contact, TrackedJob, User
from myapp.web import contacts_csv
from tests.conftest import ROOT, wait_until
from tests.jobs import enqueue_test_job
from tests.records import id_of, rows_of, rq_jobs_of
from tests.rq_state import worker_running
from tests.sessions import csrf_token, sign_in
from tests.sse_client import Stream, ended, snapshot_sent

HEADER = b"name,email,phone\n"


def contacts_of(app, account=None, job_id=None) -> list[Contact]:
    with app.app_context():
        query = db.select(Contact)
        if account is not None:
            user_id = db.session.scalar(db.select(User.id).filter_by(name=account.name))
            query = query.where(Contact.user_id == user_id)
        if job_id is not None:
            query = query.where(Contact.job_id == job_id)
        contacts = db.session.scalars(query).all()
        db.session.expunge_all()
        return contacts


def upload(client, data: bytes, headers, **fields):
    form = {"kind": "import_contacts", "file": (io.BytesIO(data), "c.csv"), **fields}
    return client.post("/api/jobs", data=form, headers=headers, content_type="multipart/form-data")


# -- rows: content is checked by the job, not refused -------------------------------


@pytest.mark.parametrize(
    ("row", "clean"),
    [
        ({"name": "Ada", "email": "ada@example.com"}, ("Ada", "ada@example.com", None)),
        (
            {
                "name": "  Ada Lovelace ",
                "email": " Ada@Example.COM ",
                "phone": " +44 (20) 7946-0000 ",
            },
            ("Ada Lovelace", "ada@example.com", "+44 (20) 7946-0000"),
        ),
        ({"name": "Zoë", "email": "z.o+tag@mail.example.co.uk", "phone": ""}, ("Zoë", None, None)),
        ({"name": "=1+2", "email": "a@b.io", "phone": None}, ("=1+2", "a@b.io", None)),
        ({"name": "x" * 200, "email": "a@b.io"}, ("x" * 200, "a@b.io", None)),
    ],
)
def test_good_rows_are_cleaned(row, clean):
    contact, reason = import_contacts.validate_row(row)
    assert reason is None
    name, email, phone = clean
    assert contact == {"name": name, "email": email or row["email"].strip().lower(), "phone": phone}


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"name": "", "email": "a@b.io"}, "name is empty"),
        ({"name": "   ", "email": "a@b.io"}, "name is empty"),
        ({"name": "x" * 201, "email": "a@b.io"}, "name is longer than 200 characters"),
        ({"name": "a\x00b", "email": "a@b.io"}, "name has control characters"),
        ({"name": "a\ud800", "email": "a@b.io"}, "name is not valid text"),
        ({"name": "Ada", "email": ""}, "email is empty"),
        ({"name": "Ada", "email": "ada"}, "email is not a valid address"),
        ({"name": "Ada", "email": "ada@localhost"}, "email is not a valid address"),
        ({"name": "Ada", "email": "a da@b.io"}, "email is not a valid address"),
        ({"name": "Ada", "email": "a@b@c.io"}, "email is not a valid address"),
        ({"name": "Ada", "email": "a@-b.io"}, "email is not a valid address"),
        ({"name": "Ada", "email": "a" * 250 + "@b.io"}, "email is longer than 254 characters"),
        ({"name": "Ada", "email": "a@b.io", "phone": "call me"}, "phone may only have digits"),
        ({"name": "Ada", "email": "a@b.io", "phone": "+-()"}, "phone may only have digits"),
        ({"name": "Ada", "email": "a@b.io", "phone": "1" * 51}, "phone is longer than 50"),
        ({"name": "", "email": "nope"}, "name is empty; email is not a valid address"),
    ],
)
def test_bad_rows_get_a_reason(row, reason):
    contact, why = import_contacts.validate_row(row)
    assert contact is None
    assert why.startswith(reason)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "params.rows: Field required"),
        ({"rows": []}, "params.rows: List should have at least 1 item"),
        ({"rows": "name,email"}, "params.rows: Input should be a valid list"),
        ({"rows": [["Ada", "a@b.io"]]}, "params.rows.0: Input should be a valid dictionary"),
        ({"rows": [{"name": "Ada"}]}, "params.rows.0.email: Field required"),
        ({"rows": [{"email": "a@b.io"}]}, "params.rows.0.name: Field required"),
        (
            {"rows": [{"name": 1, "email": "a@b.io"}]},
            "params.rows.0.name: Input should be a valid string",
        ),
        ({"rows": [{"name": "A", "email": "a@b.io", "phone": 5}]}, "params.rows.0.phone"),
        (
            {"rows": [{"name": "A", "email": "a@b.io", "company": "x"}]},
            "params.rows.0.company: Extra",
        ),
        ({"rows": [{"name": "A" * 1001, "email": "a@b.io"}]}, "params.rows.0.name: String should"),
        ({"rows": [{"name": "A", "email": "a@b.io"}], "x": 1}, "params.x: Extra inputs"),
        (
            {"rows": [{"name": "A", "email": "a@b.io"}] * 100_001},
            "params.rows: List should have at most",
        ),
    ],
)
def test_bad_shapes_are_refused(params, message):
    with pytest.raises(InvalidJob) as info:
        validate({"kind": "import_contacts", "params": params})
    assert message in str(info.value)


def test_bad_content_is_not_refused():
    rows = [{"name": "", "email": "not an email", "phone": "call me"}, {"name": "A", "email": "x"}]
    kind, params = validate({"kind": "import_contacts", "params": {"rows": rows}})
    assert kind == "import_contacts"
    assert params == {"rows": [rows[0], {**rows[1], "phone": None}]}


# -- CSV ------------------------------------------------------------------------------


def test_csv_is_read_with_any_header_case_bom_quotes_and_blank_lines():
    data = (
        "\ufeff Email ,NAME,Phone\r\n"
        "ada@example.com,Ada,+44 1\r\n"
        "\r\n"
        '"b@example.com","Lovelace, Ada",\r\n'
        '"c@example.com","Multi\nline ""quoted"""\r\n'
        ",,\r\n"
        "d@example.com\r\n"
        "e@example.com,Zoë"
    ).encode()
    assert contacts_csv.parse_csv(data) == [
        {"email": "ada@example.com", "name": "Ada", "phone": "+44 1"},
        {"email": "b@example.com", "name": "Lovelace, Ada", "phone": ""},
        {"email": "c@example.com", "name": 'Multi\nline "quoted"', "phone": ""},
        {"email": "d@example.com", "name": "", "phone": ""},
        {"email": "e@example.com", "name": "Zoë", "phone": ""},
    ]
    assert contacts_csv.parse_csv(b"name,email\nA,a@b.io\n") == [{"name": "A", "email": "a@b.io"}]


BAD_CSVS = [
    (b"name,email,company\nA,a@b.io,X\n", 'unknown column(s): "company"'),
    (b"name,email,company,notes\n", 'unknown column(s): "company", "notes"'),
    (b"name,phone\nA,1\n", "missing column(s): email"),
    (b"e-mail,name\n", 'unknown column(s): "e-mail"; missing column(s): email'),
    (b"name;email\nA;a@b.io\n", "separated by commas"),
    (b"name,email,Email\n", "repeated column(s): email"),
    (b"", "the file is empty"),
    (b"\r\n \r\n", "the file is empty"),
    (b"name,email\n", "a header row but no contacts"),
    (b"name,email\n,\n\n", "a header row but no contacts"),
    (b"name,email\nZo\xeb,z@b.io\n", "not UTF-8"),
    (b"\xff\xfen\x00a\x00m\x00e\x00", "not UTF-8"),
    (b"name,email\nA,a@b.io,extra\n", "line 2 has 3 values but the header has 2 columns"),
    (b'name,email\n"A,a@b.io\n', "not valid CSV (line 2)"),
]


@pytest.mark.parametrize(("data", "message"), BAD_CSVS)
def test_bad_csv_files_are_refused(data, message):
    with pytest.raises(InvalidJob) as info:
        contacts_csv.parse_csv(data)
    assert message in str(info.value)


def test_a_csv_may_have_100000_rows_and_no_more():
    lines = b"".join(b"P%d,p%d@example.com\n" % (i, i) for i in range(100_000))
    assert len(contacts_csv.parse_csv(b"name,email\n" + lines)) == 100_000
    with pytest.raises(InvalidJob, match="more than 100,000 rows"):
        contacts_csv.parse_csv(b"name,email\n" + lines + b"one,too@many.io\n")


# -- the API: nothing is enqueued or written for a refused request --------------------


def nothing_changes(app, account, respond):
    """Call ``respond()``; assert it is a 400 that enqueued and wrote nothing; its error."""
    keys, rows = rq_jobs_of(app, account), rows_of(app, account)
    contacts = len(contacts_of(app, account))
    response = respond()
    assert response.status_code == 400, response.get_data(as_text=True)
    assert rq_jobs_of(app, account) == keys
    assert rows_of(app, account) == rows
    assert len(contacts_of(app, account)) == contacts
    return response.json["error"]


@pytest.mark.parametrize(
    "params",
    [
        {"rows": []},
        {"rows": [{"name": "A", "email": "a@b.io", "extra": "x"}]},
        {"rows": [{"name": "A", "email": None}]},
        {"rows": [{"name": "A", "email": "a@b.io", "phone": 123}]},
        {"rows": {"name": "A", "email": "a@b.io"}},
    ],
)
def test_bad_json_requests_start_nothing(app, client, alice, params):
    body = {"kind": "import_contacts", "params": params}
    error = nothing_changes(
        app, alice, lambda: client.post("/api/jobs", json=body, headers=alice.headers)
    )
    assert error.startswith("params.rows")


def test_a_csv_upload_starts_the_same_job_as_json(app, client, alice):
    data = HEADER + b"Ada,ADA@example.com,+44 1\nBob,not-an-email,\n"
    response = upload(client, data, alice.headers)
    assert response.status_code == 202, response.json
    job = response.json
    assert job["kind"] == "import_contacts" and job["status"] == "queued"
    expected = {
        "rows": [
            {"name": "Ada", "email": "ADA@example.com", "phone": "+44 1"},
            {"name": "Bob", "email": "not-an-email", "phone": ""},
        ]
    }
    with app.app_context():
        # The rows are stored once, as an upload; the record and RQ only name it.
        params = db.session.get(TrackedJob, job["id"]).params
        assert set(params) == {"upload"}
        assert uploads.load(params["upload"], id_of(alice)) == expected["rows"]
        rq_job = get_queue().fetch_job(job["id"])
        assert rq_job.kwargs == params
        assert rq_job.func_name == "myapp.jobs.import_contacts.run"
        assert rq_job.meta["kind"] == "import_contacts"


@pytest.mark.parametrize(("data", "message"), BAD_CSVS)
def test_bad_csv_uploads_are_400_with_the_reason(app, client, alice, data, message):
    error = nothing_changes(app, alice, lambda: upload(client, data, alice.headers))
    assert message in error


def test_uploads_need_the_import_kind_and_a_file(app, client, alice):
    def post(form):
        return client.post(
            "/api/jobs", data=form, headers=alice.headers, content_type="multipart/form-data"
        )

    csv_file = (io.BytesIO(HEADER + b"A,a@b.io,\n"), "c.csv")
    assert "no file" in nothing_changes(app, alice, lambda: post({"kind": "import_contacts"}))
    error = nothing_changes(app, alice, lambda: post({"kind": "process_run", "file": csv_file}))
    assert "kind=import_contacts" in error
    error = nothing_changes(app, alice, lambda: post({"file": (io.BytesIO(b"x"), "c.csv")}))
    assert "kind=import_contacts" in error
    error = nothing_changes(
        app, alice, lambda: upload(client, HEADER + b"A,a@b.io,\n", alice.headers, steps="3")
    )
    assert error == "unknown field(s): steps"


def test_a_signed_in_page_uploads_with_the_csrf_header(app, client, alice):
    sign_in(client, alice)
    token = csrf_token(client)  # the page's, after sign-in: sign-in starts a new session
    data = HEADER + b"Ada,ada@example.com,\n"
    refused = nothing_changes(app, alice, lambda: upload(client, data, {}))
    assert "CSRF" in refused
    accepted = upload(client, data, {"X-CSRFToken": token})
    assert accepted.status_code == 202, accepted.json


def test_the_upload_must_be_signed_in(client):
    response = upload(client, HEADER + b"A,a@b.io,\n", {})
    assert response.status_code == 401


# -- real imports on the worker ------------------------------------------------------


def make_rows(count: int, bad_every: int) -> tuple[list[dict], dict[int, str]]:
    """``count`` rows; every ``bad_every``-th is bad, in turn for its email, name or phone."""
    rows, bad = [], {}
    for number in range(1, count + 1):
        row = {"name": f"Person {number}", "email": f"Person.{number}@Example.com", "phone": None}
        if number % bad_every == 0:
            flaw = (number // bad_every) % 3
            if flaw == 0:
                row["email"], bad[number] = f"person {number}", "email is not a valid address"
            elif flaw == 1:
                row["name"], bad[number] = " ", "name is empty"
            else:
                row["phone"], bad[number] = (
                    "ext. 12",
                    "phone may only have digits, spaces and + - ( )",
                )
        elif number % 7 == 0:
            row["phone"] = f"+1 555 {number:04d}"
        rows.append(row)
    return rows, bad


def to_csv(rows: list[dict]) -> bytes:
    lines = ["Name,Email,Phone"] + [f'"{r["name"]}",{r["email"]},{r["phone"] or ""}' for r in rows]
    return "\r\n".join(lines).encode()


def assert_written_once(app, job_id, user_account, expected_rows: set[int], rows: list[dict]):
    contacts = contacts_of(app, job_id=job_id)
    counts = Counter(c.row_number for c in contacts)
    assert [number for number, n in counts.items() if n > 1] == [], "no row is written twice"
    assert set(counts) == expected_rows
    with app.app_context():
        user_id = db.session.scalar(db.select(User.id).filter_by(name=user_account.name))
    for contact in contacts:
        row = rows[contact.row_number - 1]
        assert contact.user_id == user_id
        assert contact.name == row["name"]
        assert contact.email == row["email"].lower()
        assert contact.phone == row["phone"]


def test_an_import_runs_on_the_worker(app, server, worker, accounts, alice):
    rows, bad = make_rows(1000, bad_every=8)  # 125 bad rows: more than the result lists
    stream = Stream(f"{server}/stream", alice.headers)
    try:
        stream.wait_for(snapshot_sent, timeout=5)
        response = requests.post(
            f"{server}/api/jobs",
            data={"kind": "import_contacts"},
            files={"file": ("contacts.csv", to_csv(rows), "text/csv")},
            headers=alice.headers,
            timeout=30,
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        stream.wait_for(ended(stream, job_id), timeout=60)
        events = stream.job_events(job_id)
    finally:
        stream.close()

    last = events[-1]
    assert last["status"] == "finished", last
    assert last["result"] == {
        "imported": 875,
        "bad": 125,
        "bad_rows": [{"row": n, "reason": bad[n]} for n in sorted(bad)[:100]],
        "link": "/contacts",
    }
    assert last["progress"]["done"] == last["progress"]["total"] == 1000
    assert_written_once(app, job_id, alice, set(range(1, 1001)) - set(bad), rows)

    listed = requests.get(
        f"{server}/api/contacts?per_page=200", headers=alice.headers, timeout=10
    ).json()
    assert listed["total"] == 875
    assert len(listed["contacts"]) == 200
    assert listed["contacts"][0]["row"] == 1000 - 1  # row 1000 is bad (1000 % 8 == 0)
    assert all(c["job_id"] == job_id for c in listed["contacts"])
    other = requests.get(f"{server}/api/contacts", headers=accounts.create().headers, timeout=10)
    assert other.json()["total"] == 0 and other.json()["contacts"] == []


def horse_of(worker_processes, redis: Redis, job_id: str) -> int:
    """The pid of the work horse running ``job_id``: a child of the test worker that has
    the job, in a process group of its own (RQ's horse calls ``setpgrp``; the scheduler
    process, the other child, does not)."""
    (busy,) = [w for w in Worker.all(connection=redis) if w.get_current_job_id() == job_id]
    assert busy.pid in [p.pid for p in worker_processes]
    with open(f"/proc/{busy.pid}/task/{busy.pid}/children") as children:
        pids = [int(pid) for pid in children.read().split()]
    horses = [pid for pid in pids if os.getpgid(pid) == pid]
    assert len(horses) == 1, (pids, horses)
    return horses[0]


class BigImport:
    """An import of ``total`` rows started over HTTP and watched on the stream.

    On a loaded machine a long stream may time out; like the page, this reconnects
    with ``Last-Event-ID`` and gets exactly the events it missed.
    """

    def __init__(self, server, account, total: int):
        self.server, self.account, self.total = server, account, total
        self.rows, self.bad = make_rows(total, bad_every=997)
        self.streams = [Stream(f"{server}/stream", account.headers)]
        self.streams[0].wait_for(snapshot_sent, timeout=5)
        body = {"kind": "import_contacts", "params": {"rows": self.rows}}
        response = requests.post(
            f"{server}/api/jobs", json=body, headers=account.headers, timeout=60
        )
        assert response.status_code == 202, response.text
        self.job_id = response.json()["id"]

    def events(self, after: int = 0) -> list[dict]:
        seen, events = set(), []
        for stream in self.streams:
            for event in list(stream.events):
                if event.type == "job" and event.id not in seen:
                    seen.add(event.id)
                    if event.json()["id"] == self.job_id:
                        events.append(event.json())
        return events[after:]

    def wait_for(self, predicate, after: int = 0, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while not any(predicate(e) for e in self.events(after)):
            assert time.monotonic() < deadline, f"no such event in {timeout}s: {self.events()}"
            stream = self.streams[-1]
            if not stream._thread.is_alive():  # the connection ended: reconnect
                last = [e.id for e in stream.events if e.id] or [None]
                headers = {**self.account.headers, "Last-Event-ID": last[-1] or "0-0"}
                self.streams.append(Stream(f"{self.server}/stream", headers))
            time.sleep(0.02)
        return self.events(after)

    def post(self, action: str) -> requests.Response:
        return requests.post(
            f"{self.server}/api/jobs/{self.job_id}/{action}",
            headers=self.account.headers,
            timeout=10,
        )

    def resumed(self, event) -> int | None:
        pattern = rf"resumed at (\d+) of {self.total}"
        match = re.fullmatch(pattern, event["progress"]["message"] or "")
        return int(match.group(1)) if match else None

    def check_the_end(self, app, resumed_after: int) -> int:
        """The job finished after resuming at a cursor (returned) past ``resumed_after``,
        with every row written once and the result counting all the bad rows."""
        events = self.events()
        resumed = [n for e in events if (n := self.resumed(e)) is not None]
        assert resumed, [e["progress"]["message"] for e in events]
        assert resumed_after <= resumed[0] < self.total
        assert resumed[0] % import_contacts.BATCH == 0
        since = next(i for i, e in enumerate(events) if self.resumed(e) is not None)
        done = [e["progress"]["done"] for e in events[since:]]
        assert done == sorted(done) and done[0] == resumed[0], "it went on, not from the start"
        last = events[-1]
        assert last["status"] == "finished", last
        assert last["result"] == {
            "imported": self.total - len(self.bad),
            "bad": len(self.bad),
            # the bad rows before the cursor too, though that part was not run again
            "bad_rows": [{"row": n, "reason": self.bad[n]} for n in sorted(self.bad)],
            "link": "/contacts",
        }
        assert any(n < resumed[0] for n in self.bad)
        expected = set(range(1, self.total + 1)) - set(self.bad)
        assert_written_once(app, self.job_id, self.account, expected, self.rows)
        with app.app_context():
            checkpoint = db.session.get(TrackedJob, self.job_id).checkpoint
        assert checkpoint == {"done": ["import"], "current": None, "cursor": 0}
        return resumed[0]

    def close(self):
        for stream in self.streams:
            stream.close()


def test_a_killed_import_resumes_at_its_cursor_and_writes_each_row_once(app, server, worker, alice):
    redis = Redis.from_url(app.config["REDIS_URL"])
    job = BigImport(server, alice, total=20_000)
    try:
        job.wait_for(lambda e: (e["progress"]["done"] or 0) >= 1000)
        os.kill(horse_of(worker, redis, job.job_id), signal.SIGKILL)
        killed_at = len(job.events())

        # The job fails, or its kind retries it by itself; a failed one is retried by hand.
        after = job.wait_for(
            lambda e: e["status"] in TERMINAL or job.resumed(e) is not None, after=killed_at
        )
        assert after[0]["status"] != "finished", "the horse was killed half way"
        retried_at = killed_at
        if any(e["status"] == "failed" for e in after):
            retried_at = len(job.events())
            response = job.post("retry")
            assert response.status_code == 202, response.text
        job.wait_for(lambda e: e["status"] == "finished", after=retried_at, timeout=120)
    finally:
        job.close()
    # The cursor was committed before the progress that said 1000 went out.
    job.check_the_end(app, resumed_after=1000)


def test_a_canceled_import_retried_by_hand_goes_on_where_it_stopped(app, server, worker, alice):
    job = BigImport(server, alice, total=40_000)
    try:
        job.wait_for(lambda e: (e["progress"]["done"] or 0) >= 1000)
        response = job.post("cancel")
        assert response.status_code == 202, response.text
        job.wait_for(lambda e: e["status"] in TERMINAL)
        assert job.events()[-1]["status"] == "canceled"
        with app.app_context():
            cursor = db.session.get(TrackedJob, job.job_id).checkpoint["cursor"]
        written = len(contacts_of(app, job_id=job.job_id))
        assert 1000 <= cursor < job.total
        assert written == cursor - sum(1 for n in job.bad if n <= cursor)

        retried_at = len(job.events())
        response = job.post("retry")
        assert response.status_code == 202, response.text
        job.wait_for(lambda e: e["status"] == "finished", after=retried_at, timeout=120)
    finally:
        job.close()
    assert job.check_the_end(app, resumed_after=1000) == cursor


def test_a_killed_worker_resumes_on_a_new_one_at_its_cursor(
    app, server, worker, service_env, alice
):
    """kill -9 the worker (its horse dies with it), start a new one: the reaper gives the
    job back to the queue (the kind retries), and it goes on from its cursor."""
    job = BigImport(server, alice, total=20_000)
    try:
        job.wait_for(lambda e: (e["progress"]["done"] or 0) >= 1000)
        victim = worker_running(app.config["REDIS_URL"], job.job_id)
        os.kill(victim.pid, signal.SIGKILL)
        worker.append(subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=service_env))
        killed_at = len(job.events())
        after = job.wait_for(lambda e: job.resumed(e) is not None, after=killed_at, timeout=60)
        assert any(e["error"] == "worker died" for e in after), "the death was reported"
        job.wait_for(lambda e: e["status"] == "finished", after=killed_at, timeout=120)
    finally:
        job.close()
    job.check_the_end(app, resumed_after=1000)


def test_an_import_queued_with_its_rows_inline_still_runs(app, server, worker, alice):
    """Jobs enqueued before uploads were stored apart carry their rows in RQ's kwargs."""
    rows = [{"name": "Ada", "email": "ada@example.com", "phone": None}]
    job_id = enqueue_test_job(app, alice, "myapp.jobs.import_contacts.run", rows=rows)

    def ended():
        with app.app_context():
            status = db.session.get(TrackedJob, job_id).status
            db.session.rollback()
            return status if status in TERMINAL else None

    assert wait_until(ended) == "finished"
    assert [c.email for c in contacts_of(app, job_id=job_id)] == ["ada@example.com"]
