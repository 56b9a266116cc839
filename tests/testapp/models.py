"""Operation types the tests run."""

from __future__ import annotations

import threading
import time
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


class Endless(LiveOperation):
    """Works until it is cancelled, interrupted or killed (for the liveness tests)."""

    stages = ["Work"]

    def run(self, p: Progress) -> None:
        with p.stage("Work"):
            p.status("working")
            while True:
                time.sleep(0.02)
                p.log("still working")
                p.check_cancelled()


class CountedRun(models.Model):
    """One run of a ``Counted`` operation, written by whichever process ran it."""

    operation_id = models.UUIDField(db_index=True)
    pid = models.IntegerField()

    def __str__(self) -> str:
        return f"run of {self.operation_id} in process {self.pid}"


class Counted(LiveOperation):
    """Records each of its runs in ``CountedRun``, so tests count runs across processes."""

    def run(self, p: Progress) -> None:
        import os

        CountedRun.objects.create(operation_id=self.pk, pid=os.getpid())
        p.result(runs=CountedRun.objects.filter(operation_id=self.pk).count(), pid=os.getpid())
