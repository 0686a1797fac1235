"""The database across forks: RQ forks work horses and its scheduler."""

import os

from myapp.db import db


def test_a_forked_child_never_uses_its_parents_database_connection(app):
    with app.app_context():
        db.session.execute(db.text("SELECT 1"))
        parents = db.session.connection().connection.dbapi_connection
        db.session.remove()  # back in the pool, where the child finds it
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, then leave without any cleanup
            try:
                db.session.execute(db.text("SELECT 1"))
                own = db.session.connection().connection.dbapi_connection
                os.write(writer, b"own" if own is not parents else b"inherited")
            finally:
                os._exit(0)
        os.close(writer)
        answer = os.read(reader, 100)
        os.waitpid(pid, 0)
        # The parent's connection still works: the child neither used nor closed it.
        db.session.execute(db.text("SELECT 1"))
        assert db.session.connection().connection.dbapi_connection is parents
    assert answer == b"own"
