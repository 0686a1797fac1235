"""Users for tests, made through the real ``flask user create`` command."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass
class Account:
    name: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Accounts:
    def __init__(self, app):
        self.runner = app.test_cli_runner()

    def create(self, admin: bool = False) -> Account:
        name = f"user-{uuid.uuid4().hex[:8]}"
        password = uuid.uuid4().hex
        args = ["user", "create", name, "--password", password]
        result = self.runner.invoke(args=args + (["--admin"] if admin else []))
        assert result.exit_code == 0, result.output
        token = result.output.strip().splitlines()[-1].removeprefix("token: ")
        return Account(name, password, token)
