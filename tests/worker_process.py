"""Run one operation in this process, the way a worker would.

    python -m tests.worker_process <app_label.model_name> <pk>

The tests start it to kill it (SIGKILL, SIGTERM) in the middle of a run.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from liveops._execution import execute  # noqa: E402

if __name__ == "__main__":
    execute(sys.argv[1], sys.argv[2])
