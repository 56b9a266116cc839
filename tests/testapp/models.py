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


class Pulsed(LiveOperation):
    """Reports ``steps`` steps, each held until a test releases it (for tests/test_e2e_stack.py).

    Step ``i`` sets the percent to ``100 * i / steps`` and logs ``"step i"``, then polls
    its own row every 50 ms until ``released >= i``: the test, in another process, can
    look at every viewer while the operation is mid-run, then let it go on. A step not
    released within ``wait_seconds`` fails the operation. The result names the process.
    """

    steps = models.PositiveSmallIntegerField(default=2)
    released = models.PositiveSmallIntegerField(default=0)
    wait_seconds = models.FloatField(default=30.0)

    def run(self, p: Progress) -> None:
        import os

        for step in range(1, self.steps + 1):
            p.percent(100 * step / self.steps)
            p.log(f"step {step}")
            self._wait_for_release(step)
        p.result(steps=self.steps, pid=os.getpid())

    def _wait_for_release(self, step: int) -> None:
        deadline = time.monotonic() + self.wait_seconds
        released = type(self)._default_manager.filter(pk=self.pk, released__gte=step)
        while not released.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"step {step} was not released within {self.wait_seconds} s")
            time.sleep(0.05)


class Chaining(LiveOperation):
    """Does a first part, then continues in the operation ``NEXT[pk]()`` makes (p.chain_to)."""

    NEXT: ClassVar[dict[Any, Any]] = {}

    def run(self, p: Progress) -> None:
        p.log("first part done")
        make = self.NEXT.get(self.pk, Scripted)
        p.chain_to(make(), rows=3)


class Swapping(LiveOperation):
    """Runs the steps in ``SCRIPTS[pk]``, with two custom regions for ``p.swap()``."""

    SCRIPTS: ClassVar[dict[Any, Any]] = {}
    extra_regions = ["chart", "summary"]

    def run(self, p: Progress) -> None:
        for step in self.SCRIPTS.get(self.pk, []):
            step(p)


class Narrating(LiveOperation):
    """Says where it is at each of ``steps`` steps, then waits there until a test releases it.

    Step ``i`` sets the status to ``"Working on step i of n"``, the percent to
    ``100 * i / (n + 1)`` and logs ``LINES_PER_STEP`` lines (``"step i, line j"``), inside
    the stage "Work"; then it polls its own row every 50 ms until ``released >= i``, sending
    no tick meanwhile but the publisher's keyframes (status, percent and stages, never the
    log). So a test can open a page on an operation paused mid-run and tell what the page
    got from the database. A step not released within ``wait_seconds`` fails the operation.
    """

    LINES_PER_STEP: ClassVar[int] = 3
    stages = ["Work"]

    steps = models.PositiveSmallIntegerField(default=2)
    released = models.PositiveSmallIntegerField(default=0)
    wait_seconds = models.FloatField(default=30.0)

    class Meta(LiveOperation.Meta):
        abstract = True

    def run(self, p: Progress) -> None:
        import os

        with p.stage("Work"):
            for step in range(1, self.steps + 1):
                p.status(f"Working on step {step} of {self.steps}")
                p.percent(100 * step / (self.steps + 1))
                for line in range(1, self.LINES_PER_STEP + 1):
                    p.log(f"step {step}, line {line}")
                deadline = time.monotonic() + self.wait_seconds
                released = type(self)._default_manager.filter(pk=self.pk, released__gte=step)
                while not released.exists():
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"step {step} was not released in {self.wait_seconds} s")
                    time.sleep(0.05)
        p.result(steps=self.steps, pid=os.getpid())


class Narrated(Narrating):
    """Stores its live progress as ``PERSIST_PROGRESS`` says (for test_persist_progress_stack)."""


class NarratedUnstored(Narrating):
    """The same, never storing its live progress: what a page opened mid-run misses without it."""

    persist_progress = False
