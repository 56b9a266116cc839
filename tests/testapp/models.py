"""Operation types the tests run."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from django.db import models

from liveops.models import LiveOperation
from liveops.progress import Progress


class Scripted(LiveOperation):
    """Runs the steps a test put in ``SCRIPTS[pk]``: callables taking ``p``."""

    SCRIPTS: ClassVar[dict[Any, Any]] = {}
    stages = ["Prepare", "Work"]

    def run(self, p: Progress) -> None:
        for step in self.SCRIPTS.get(self.pk, []):
            step(p)


class Gated(LiveOperation):
    """Reports progress, then waits until a test opens its gate."""

    GATES: ClassVar[dict[Any, threading.Event]] = {}
    label = models.CharField(max_length=50, blank=True)

    def run(self, p: Progress) -> None:
        p.status("working")
        p.percent(40)
        p.log("line one")
        self.GATES[self.pk].wait(30)
        p.result(answer=42)
