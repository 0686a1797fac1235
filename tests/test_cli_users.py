from tests.sessions import session_cookie, sign_in


def test_create_prints_a_working_token_last(runner, client):
    result = runner.invoke(args=["user", "create", "carol-cli", "--password", "pw"])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("token: ")
    headers = {"Authorization": f"Bearer {last.removeprefix('token: ')}"}
    assert client.get("/api/jobs", headers=headers).status_code == 200


def test_create_without_password_prints_one(runner):
    result = runner.invoke(args=["user", "create", "dave-cli", "--admin"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("password: ")
    assert "created admin user dave-cli" in result.output


def test_duplicate_user_is_an_error(runner):
    assert runner.invoke(args=["user", "create", "erin-cli"]).exit_code == 0
    again = runner.invoke(args=["user", "create", "erin-cli"])
    assert again.exit_code != 0
    assert "already exists" in again.output


def test_token_gives_another_working_token(runner, client):
    first = runner.invoke(args=["user", "create", "frank-cli"]).output.strip().splitlines()[-1]
    second = runner.invoke(args=["user", "token", "frank-cli"]).output.strip().splitlines()[-1]
    assert second.startswith("token: ") and second != first
    for line in (first, second):
        headers = {"Authorization": f"Bearer {line.removeprefix('token: ')}"}
        assert client.get("/api/jobs", headers=headers).status_code == 200


def test_token_for_unknown_user_is_an_error(runner):
    result = runner.invoke(args=["user", "token", "nobody-here"])
    assert result.exit_code != 0
    assert "no user 'nobody-here'" in result.output


def test_revoke_signs_out_sessions_too(app, runner, client, accounts):
    carol = accounts.create()
    sign_in(client, carol)
    copied = session_cookie(client)
    result = runner.invoke(args=["user", "revoke", carol.name])
    assert result.exit_code == 0, result.output
    assert client.get("/api/jobs").status_code == 401
    assert "signed out its sessions" in result.output
    other = app.test_client()
    other.set_cookie("session", copied)
    assert other.get("/api/jobs").status_code == 401
    assert client.get("/api/jobs", headers=carol.headers).status_code == 401


def test_a_new_password_signs_out_sessions(runner, client, accounts):
    dan = accounts.create()
    sign_in(client, dan)
    result = runner.invoke(args=["user", "password", dan.name, "--password", "new-pass"])
    assert result.exit_code == 0, result.output
    assert client.get("/api/jobs").status_code == 401
    dan.password = "new-pass"
    sign_in(client, dan)
    assert client.get("/api/jobs").status_code == 200
    assert client.get("/api/jobs", headers=dan.headers).status_code == 200  # tokens stay


def test_password_without_one_prints_a_random_one(runner, accounts):
    erin = accounts.create()
    result = runner.invoke(args=["user", "password", erin.name])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("password: ")
    assert runner.invoke(args=["user", "password", "nobody-here"]).exit_code != 0
