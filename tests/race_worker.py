"""Race another process for operations, the way two workers given the same task would.

    python -m tests.race_worker

For each line ``<label> <pk> <lock key>`` on stdin: print ``waiting <pk>``, block until the
test releases PostgreSQL advisory lock ``<lock key>`` (a barrier shared with the other
racer), call ``execute(label, pk)`` at once, and print ``done <pk>``.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings_pg")

import django

django.setup()

from django.db import connection  # noqa: E402

from liveops._execution import execute  # noqa: E402


def main() -> None:
    connection.ensure_connection()
    print("started", flush=True)
    for line in sys.stdin:
        label, pk, key = line.split()
        print(f"waiting {pk}", flush=True)
        with connection.cursor() as cursor:
            # Shared: both racers pass together once the test drops its exclusive lock.
            cursor.execute("SELECT pg_advisory_lock_shared(%s)", [int(key)])
        try:
            execute(label, pk)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock_shared(%s)", [int(key)])
        print(f"done {pk}", flush=True)


if __name__ == "__main__":
    main()
