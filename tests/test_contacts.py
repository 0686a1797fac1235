"""The contacts list: ``GET /api/contacts`` and the ``/contacts`` page, one user's only."""

import re
import uuid
from datetime import timedelta

import pytest

from myapp import job_json
from myapp.db import db
from myapp.models import Contact, User
from tests.sessions import sign_in


def add_contacts(app, account, count: int, names=None) -> str:
    """Write ``count`` contacts of one (pretend) import, row 1 oldest; its job id."""
    job_id = str(uuid.uuid4())
    start = job_json.utcnow()
    with app.app_context():
        user_id = db.session.scalar(db.select(User.id).filter_by(name=account.name))
        db.session.add_all(
            Contact(
                user_id=user_id,
                job_id=job_id,
                row_number=row,
                name=names[row - 1] if names else f"Person {row}",
                email=f"p{row}@example.com",
                phone="+1 555 0100" if row % 2 else None,
                created_at=start + timedelta(milliseconds=row),
            )
            for row in range(1, count + 1)
        )
        db.session.commit()
    return job_id


def test_signed_out_gets_401_json_or_is_sent_to_sign_in(client):
    response = client.get("/api/contacts")
    assert response.status_code == 401
    assert response.json == {"error": "authentication required"}
    bad_token = client.get("/api/contacts", headers={"Authorization": "Bearer nope"})
    assert bad_token.status_code == 401
    page = client.get("/contacts")
    assert page.status_code == 302
    assert page.headers["Location"] == "/"


def test_the_list_is_mine_newest_first_and_paginated(app, client, accounts, alice):
    bob = accounts.create()
    add_contacts(app, alice, 120)
    add_contacts(app, bob, 3)

    first = client.get("/api/contacts?page=1&per_page=50", headers=alice.headers)
    assert first.status_code == 200
    assert {key: first.json[key] for key in ("total", "page", "per_page")} == {
        "total": 120,
        "page": 1,
        "per_page": 50,
    }
    assert [c["row"] for c in first.json["contacts"]] == list(range(120, 70, -1))
    contact = first.json["contacts"][0]
    assert set(contact) == {"id", "name", "email", "phone", "job_id", "row", "created_at"}
    assert contact["name"] == "Person 120" and contact["email"] == "p120@example.com"

    last = client.get("/api/contacts?page=3&per_page=50", headers=alice.headers).json
    assert [c["row"] for c in last["contacts"]] == list(range(20, 0, -1))
    beyond = client.get("/api/contacts?page=4&per_page=50", headers=alice.headers).json
    assert beyond["total"] == 120 and beyond["contacts"] == []

    theirs = client.get("/api/contacts", headers=bob.headers).json
    assert theirs["total"] == 3
    assert [c["name"] for c in theirs["contacts"]] == ["Person 3", "Person 2", "Person 1"]


def test_default_and_largest_page_sizes(app, client, alice):
    add_contacts(app, alice, 230)
    default = client.get("/api/contacts", headers=alice.headers).json
    assert (default["page"], default["per_page"], len(default["contacts"])) == (1, 50, 50)
    largest = client.get("/api/contacts?per_page=200&page=2", headers=alice.headers).json
    assert (largest["per_page"], len(largest["contacts"])) == (200, 30)


def test_nobody_else_sees_my_contacts(app, client, accounts, alice):
    add_contacts(app, alice, 5)
    stranger = accounts.create()
    assert client.get("/api/contacts", headers=stranger.headers).json["total"] == 0
    page = client.get("/contacts", headers=stranger.headers).get_data(as_text=True)
    assert "Person 1" not in page and "No contacts yet" in page


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("per_page=0", "per_page"),
        ("per_page=201", "per_page"),
        ("per_page=abc", "per_page"),
        ("per_page=-1", "per_page"),
        ("per_page=1.5", "per_page"),
        ("per_page=", "per_page"),
        ("per_page=+5", "per_page"),
        ("page=0", "page"),
        ("page=x", "page"),
        ("page=99999999999", "page"),
        ("page=1_0", "page"),
    ],
)
def test_bad_paging_is_a_400_in_json(client, alice, query, name):
    response = client.get(f"/api/contacts?{query}", headers=alice.headers)
    assert response.status_code == 400
    assert response.json["error"].startswith(f"{name} must be a whole number")


def test_the_page_lists_escaped_contacts_with_pages_and_a_way_back(app, client, alice):
    names = [f"Person {row}" for row in range(1, 61)]
    names[-1] = "<script>alert(1)</script>"
    names[-2] = '=HYPERLINK("http://evil")'
    add_contacts(app, alice, 60, names=names)
    sign_in(client, alice)

    response = client.get("/contacts")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page and "style=" not in page and "<style" not in page
    assert "=HYPERLINK(&#34;http://evil&#34;)" in page  # stored as is, shown escaped
    assert 'href="/static/style.css"' in page
    assert 'href="/"' in page
    assert "60 in all" in page
    assert "p60@example.com" in page and "p11@example.com" in page
    assert "p10@example.com" not in page  # on page 2
    assert re.search(r'href="/contacts\?page=2"[^>]*>Next', page)
    assert "Previous" not in page

    second = client.get("/contacts?page=2").get_data(as_text=True)
    assert "p10@example.com" in second and "p1@example.com" in second
    assert "p11@example.com" not in second
    assert re.search(r'href="/contacts\?page=1"[^>]*>Previous', second)
    assert ">Next<" not in second

    small = client.get("/contacts?page=3&per_page=25").get_data(as_text=True)
    assert "p10@example.com" in small and "p11@example.com" not in small
    assert re.search(r'href="/contacts\?page=2&amp;per_page=25"[^>]*>Previous', small)

    assert client.get("/contacts?per_page=0").status_code == 400


def test_the_jobs_page_links_contacts_and_has_the_import_form(client, alice):
    sign_in(client, alice)
    page = client.get("/").get_data(as_text=True)
    assert '<a href="/contacts">Contacts</a>' in page
    form = re.search(r'<form id="import-form"[^>]*>(.*?)</form>', page, re.S)
    assert form, "the import form is on the page"
    body = form.group(1)
    assert re.search(r'<label for="import-file">Import contacts \(CSV\)</label>', body)
    file_input = re.search(r'<input type="file"[^>]*>', body).group(0)
    for attribute in ('id="import-file"', 'name="file"', 'accept=".csv,text/csv"'):
        assert attribute in file_input
    assert re.search(r'<button type="submit"[^>]*>Import</button>', body)
    toolbar = page.split('<div class="toolbar">', 1)[1].split("</div>", 1)[0]
    assert 'id="start-processes"' in toolbar and 'id="import-form"' in toolbar
    assert "style=" not in page and "<style" not in page
