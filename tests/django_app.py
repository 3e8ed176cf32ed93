"""A minimal Django app for tests/test_connections.py, run in a process of
its own (Django's settings are configured once per process): enqueues
inside ``transaction.atomic()`` and prints the tasks' ids as JSON.

    python -m tests.django_app <database url>"""

from __future__ import annotations

import json
import sys
from urllib.parse import urlsplit

import django
from django.conf import settings


def configure(dsn: str) -> None:
    parts = urlsplit(dsn)
    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": parts.path.lstrip("/"),
                "USER": parts.username or "",
                "PASSWORD": parts.password or "",
                "HOST": parts.hostname or "",
                "PORT": str(parts.port or ""),
            }
        },
        USE_TZ=True,
    )
    django.setup()


class Rollback(Exception):
    pass


def main(dsn: str) -> None:
    configure(dsn)
    from django.db import connection, transaction

    from taskqueue.sync import TaskQueue

    ids: dict[str, str] = {}
    with TaskQueue.connect(dsn) as tq:
        ids["autocommitted"] = str(tq.enqueue("noop").id)  # Django's connection, no atomic block
        with transaction.atomic():
            connection.cursor().execute("SELECT 1")  # the app's own work
            ids["committed"] = str(tq.enqueue("noop", {"django": True}).id)
        try:
            with transaction.atomic():
                ids["rolled_back"] = str(tq.enqueue("noop").id)
                raise Rollback
        except Rollback:
            pass
        with transaction.atomic():
            ids["explicit"] = str(tq.enqueue("noop", connection=connection).id)
        try:
            with transaction.atomic():
                with transaction.atomic():  # a savepoint that itself commits
                    ids["outer_rolled_back"] = str(tq.enqueue("noop").id)
                raise Rollback
        except Rollback:
            pass
    print(json.dumps(ids))


if __name__ == "__main__":
    main(sys.argv[1])
