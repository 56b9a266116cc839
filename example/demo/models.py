"""The demo's operation types: each subclasses LiveOperation and writes ``run(self, p)``."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse

from liveops.models import LiveOperation
from liveops.progress import Progress

#: How long a LongImport or FailingJob may be asked to take, in seconds.
SECONDS_VALIDATORS = [MinValueValidator(0.5), MaxValueValidator(300)]


class QuickCount(LiveOperation):
    """Counts primes and finishes in a few milliseconds, before the page can even connect.

    The live page still shows the result: the result is committed to the database
    before it is pushed, and every (re)connect starts with a snapshot read from it.
    """

    below = models.PositiveIntegerField(
        "count the primes below",
        default=50_000,
        validators=[MinValueValidator(2), MaxValueValidator(200_000)],
    )

    class Meta:
        verbose_name = "quick count"

    def __str__(self) -> str:
        return "Quick count"

    def run(self, p: Progress) -> None:
        p.status(f"Sieving the numbers below {self.below}")
        sieve = bytearray([1]) * self.below
        sieve[:2] = b"\x00\x00"
        for n in range(2, int(self.below**0.5) + 1):
            if sieve[n]:
                sieve[n * n :: n] = bytes(len(range(n * n, self.below, n)))
        primes = sieve.count(1)
        largest = sieve.rindex(1) if primes else None
        p.log(f"{primes} primes below {self.below}")
        p.result(below=self.below, primes=primes, largest=largest)


class LongImport(LiveOperation):
    """Imports made-up customer rows in three stages, with status, percent and a log.

    Download reports a percent by hand (``p.percent``) and asks for a cancel itself
    (``p.check_cancelled``); Validate and Import go through ``p.track`` over a list,
    so the count and percent follow the loop and a cancel stops it.
    With ``stream``, Import reads a generator of unknown length instead: the page
    then shows a running count, not a percent.

    It stores its live progress (``persist_progress``), so a second tab opened mid-run,
    or a reload, shows the percent, the stages and the whole log at once.
    """

    ROWS = 240
    #: Every this many rows, one has no e-mail address and is skipped.
    BAD_ROW_EVERY = 17

    stages = ["Download", "Validate", "Import"]
    persist_progress = True

    seconds = models.FloatField(
        "duration (seconds)",
        default=18,
        validators=SECONDS_VALIDATORS,
        help_text="Roughly how long the whole import takes.",
    )
    stream = models.BooleanField(
        "read rows from a stream of unknown length",
        default=False,
        help_text="The page then counts rows instead of showing a percent.",
    )

    class Meta:
        verbose_name = "long import"

    def __str__(self) -> str:
        return "Long import (streamed)" if self.stream else "Long import"

    def run(self, p: Progress) -> None:
        started = time.monotonic()
        # Download takes 20 % of the time, Validate 35 %, Import 45 %.
        rows = [_made_up_customer(n) for n in range(1, self.ROWS + 1)]

        with p.stage("Download"):
            p.status("Downloading customers.csv")
            size_kb, steps = 4_800, 20
            for step in range(1, steps + 1):
                # p.track() checks for a cancel on every item; a loop of its own asks.
                p.check_cancelled()
                time.sleep(self.seconds * 0.2 / steps)
                p.percent(100 * step / steps)
                if step % 4 == 0:
                    p.log(f"Downloaded {size_kb * step // steps:,} of {size_kb:,} KB")

        with p.stage("Validate"):
            p.status("Checking every row")
            valid, skipped = [], 0
            for row in p.track(rows, label="Validating", unit="row"):
                time.sleep(self.seconds * 0.35 / len(rows))
                if row["email"]:
                    valid.append(row)
                else:
                    skipped += 1
                    p.log(f"Row {row['n']}: no e-mail address, skipped")

        with p.stage("Import"):
            p.status(f"Importing {len(valid)} rows")
            source: Iterable[dict[str, Any]] = _stream(valid) if self.stream else valid
            imported = 0
            for row in p.track(source, label="Importing", unit="row"):
                time.sleep(self.seconds * 0.45 / len(valid))
                imported += 1
                if imported % 10 == 0:
                    p.log(f"Imported {imported} rows (last: {row['name']})")

        p.status("Import complete", "success")
        p.result(
            imported_rows=imported,
            skipped_rows=skipped,
            duration=f"{time.monotonic() - started:.1f} s",
        )


class FailingJob(LiveOperation):
    """Logs a few lines, moves its percent, then raises an exception.

    The viewer sees a generic failure message; staff also see the traceback.
    """

    seconds = models.FloatField("duration (seconds)", default=2, validators=SECONDS_VALIDATORS)

    class Meta:
        verbose_name = "failing job"

    def __str__(self) -> str:
        return "Failing job"

    def run(self, p: Progress) -> None:
        p.status("Talking to the billing service")
        for step in range(1, 5):
            time.sleep(self.seconds / 4)
            p.percent(15 * step)
            p.log(f"Sent batch {step} of 8")
        raise ConnectionError("the billing service answered 503 Service Unavailable")


class SalesReport(LiveOperation):
    """Sums made-up sales region by region, drawing its chart as it goes, then sends it.

    The chart is a custom region (``extra_regions``) that ``p.swap()`` redraws from a
    template after each region. At the end, ``p.chain_to()`` continues in a
    ``SendReport``: the page switches to the sending in place, without a reload.
    """

    REGIONS = ("North", "East", "South", "West", "Centre")

    extra_regions = ["chart"]

    seconds = models.FloatField("duration (seconds)", default=6, validators=SECONDS_VALIDATORS)
    recipients = models.PositiveIntegerField(
        "recipients", default=12, validators=[MinValueValidator(1), MaxValueValidator(500)]
    )

    class Meta:
        verbose_name = "sales report"

    def __str__(self) -> str:
        return "Sales report"

    def run(self, p: Progress) -> None:
        p.status("Summing the sales of each region")
        sales: dict[str, int] = {}
        for region in p.track(self.REGIONS, label="Regions", unit="region"):
            time.sleep(self.seconds / len(self.REGIONS))
            sales[region] = _made_up_sales(region)
            p.log(f"{region}: {sales[region]:,} sales")
            chart = {"bars": sales.items(), "largest": max(sales.values())}
            p.swap("chart", template="demo/sales_chart.html", context=chart)
        p.chain_to(
            SendReport(recipients=self.recipients, seconds=self.seconds),
            regions=len(sales),
            total_sales=f"{sum(sales.values()):,}",
        )


class SendReport(LiveOperation):
    """Sends a finished sales report by e-mail; a ``SalesReport`` continues in it."""

    recipients = models.PositiveIntegerField("recipients", default=12)
    seconds = models.FloatField("duration (seconds)", default=6, validators=SECONDS_VALIDATORS)

    class Meta:
        verbose_name = "report sending"

    def __str__(self) -> str:
        return "Sending the sales report"

    def run(self, p: Progress) -> None:
        p.status(f"Sending the report to {self.recipients} people")
        for n in p.track(range(1, self.recipients + 1), label="Sending", unit="email"):
            time.sleep(self.seconds / self.recipients)
            p.log(f"Sent to recipient {n}")
        p.status("Report sent", "success")
        p.result(sent=self.recipients)


class Batch(models.Model):
    """Three operations started together and watched on one page, over one WebSocket."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    created_on = models.DateTimeField(auto_now_add=True)
    long_import = models.ForeignKey(LongImport, on_delete=models.CASCADE, related_name="+")
    stream_import = models.ForeignKey(LongImport, on_delete=models.CASCADE, related_name="+")
    failing_job = models.ForeignKey(FailingJob, on_delete=models.CASCADE, related_name="+")

    class Meta:
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return f"Batch {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("batch", kwargs={"pk": self.pk})

    @property
    def operations(self) -> list[LiveOperation]:
        """Return the batch's operations in the order the page shows them."""
        return [self.long_import, self.stream_import, self.failing_job]


#: The operation types the home page lists, in the order it lists them.
OPERATION_TYPES: list[type[LiveOperation]] = [
    QuickCount,
    LongImport,
    FailingJob,
    SalesReport,
    SendReport,
]


def _made_up_customer(n: int) -> dict[str, Any]:
    name = f"Customer {n:04d}"
    email = "" if n % LongImport.BAD_ROW_EVERY == 0 else f"customer{n}@example.com"
    return {"n": n, "name": name, "email": email}


def _stream(rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    # A generator has no len(): p.track() shows a count instead of a percent.
    yield from rows


def _made_up_sales(region: str) -> int:
    return 800 + sum(map(ord, region)) * 7 % 1_200
