"""``flask user``: create users and give them API tokens."""

from __future__ import annotations

import secrets

import click
from flask import Flask
from flask.cli import AppGroup

from myapp.db import db
from myapp.models import User

cli = AppGroup("user", help="Create users and their API tokens.")


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
    if password is None:
        password = secrets.token_urlsafe(12)
        click.echo(f"password: {password}")
    user.set_password(password)
    token = user.new_token()
    db.session.add(user)
    db.session.commit()
    click.echo(f"created {'admin ' if admin else ''}user {name}")
    click.echo(f"token: {token}")


@cli.command("token")
@click.argument("name")
def token(name: str) -> None:
    """Print a new API token for user NAME (its earlier tokens stay valid)."""
    user = db.session.scalar(db.select(User).filter_by(name=name))
    if user is None:
        raise click.ClickException(f"no user {name!r}")
    new = user.new_token()
    db.session.commit()
    click.echo(f"token: {new}")


@cli.command("revoke")
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke every API token of user NAME; requests with them answer 401 from now on."""
    user = db.session.scalar(db.select(User).filter_by(name=name))
    if user is None:
        raise click.ClickException(f"no user {name!r}")
    count = len(user.tokens)
    user.tokens.clear()
    db.session.commit()
    click.echo(f"revoked {count} token{'' if count == 1 else 's'} of {name}")
