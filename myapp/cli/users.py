"""``flask user``: create users, give them API tokens, change passwords, revoke."""

from __future__ import annotations

import secrets

import click
from flask import Flask
from flask.cli import AppGroup

from myapp.db import db
from myapp.models import User

cli = AppGroup("user", help="Create users and their API tokens; change passwords; revoke.")


def init_app(app: Flask) -> None:
    app.cli.add_command(cli)


@cli.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="May open rq-dashboard at /rq.")
@click.option("--password", help="For signing in on the page; a random one when left out.")
def create(name: str, admin: bool, password: str | None) -> None:
    """Create user NAME and print a new API token last."""
    if not name.strip() or len(name) > 80:
        raise click.BadParameter("must be 1 to 80 characters", param_hint="NAME")
    if db.session.scalar(db.select(User).filter_by(name=name)) is not None:
        raise click.ClickException(f"user {name!r} already exists")
    user = User(name=name, is_admin=admin)
    user.set_password(_given_or_random(password))
    token = user.new_token()
    db.session.add(user)
    db.session.commit()
    click.echo(f"created {'admin ' if admin else ''}user {name}")
    click.echo(f"token: {token}")


@cli.command("token")
@click.argument("name")
def token(name: str) -> None:
    """Print a new API token for user NAME (its earlier tokens stay valid)."""
    user = _user(name)
    new = user.new_token()
    db.session.commit()
    click.echo(f"token: {new}")


@cli.command("revoke")
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke every API token of user NAME and sign out all its sessions; requests
    with them answer 401 from now on."""
    user = _user(name)
    count = len(user.tokens)
    user.tokens.clear()
    user.end_sessions()
    db.session.commit()
    plural = "" if count == 1 else "s"
    click.echo(f"revoked {count} token{plural} of {name}, signed out its sessions")


@cli.command("password")
@click.argument("name")
@click.option("--password", help="The new password; a random one when left out.")
def password(name: str, password: str | None) -> None:
    """Give user NAME a new password; its sessions are signed out."""
    user = _user(name)
    user.set_password(_given_or_random(password))
    db.session.commit()
    click.echo(f"new password for {name}; its sessions are signed out")


def _user(name: str) -> User:
    user = db.session.scalar(db.select(User).filter_by(name=name))
    if user is None:
        raise click.ClickException(f"no user {name!r}")
    return user


def _given_or_random(password: str | None) -> str:
    """The password given, or a random one, printed since it is shown only once."""
    if password is None:
        password = secrets.token_urlsafe(12)
        click.echo(f"password: {password}")
    return password
