"""Two operations written against django-liveops 0.4's API, unchanged by the move."""

import time

from django.db import models

from liveops.models import LiveOperation
from liveops.progress import Progress


class ScoreImport(LiveOperation):
    """Imports scored rows in three stages, as 0.4's tutorial builds one."""

    csv_name = models.CharField(max_length=200, default="scores.csv")
    rows = models.PositiveIntegerField(default=6)
    pause = models.FloatField(default=0.4)

    stages = ["Load", "Validate", "Save"]

    class Meta:
        app_label = "imports"

    def run(self, p: Progress):
        with p.stage("Load"):
            p.status(f"Loading {self.csv_name}…")
            scores = [(n, n * 7 % 10) for n in range(self.rows)]
            p.log(f"Loaded {len(scores)} rows")
        with p.stage("Validate"):
            valid = [row for row in p.track(scores, label="Validation") if row[1]]
        with p.stage("Save"):
            saved = 0
            for _row in p.track(valid, label="Saving"):
                time.sleep(self.pause)
                saved += 1
        p.result({"saved": saved, "errors": len(scores) - len(valid)})


class PBNExport(LiveOperation):
    """An export whose page and result templates 0.4 found by its class name."""

    target = models.CharField(max_length=100, default="PBN")

    host_template_name = "imports/export_page.html"

    class Meta:
        app_label = "imports"

    def run(self, p: Progress):
        p.status("Exporting…")
        p.percent(50)
        p.result(totals={"books": 3, "articles": 5}, target=self.target)
