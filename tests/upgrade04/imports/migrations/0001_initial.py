"""The tables django-liveops 0.4.x's abstract model gave these two operations.

Written from 0.4's documented fields: a UUID key, the owner, the timestamps, the terminal
state (a NULL-able traceback), the language (20 characters), its placeholder progress
columns (status_text of 255 characters, percent as a small integer defaulting to 0, log,
log_seq) and its stage columns (current_stage, stage_states).
"""

import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _liveops_04_fields():
    return [
        ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
        ("created_on", models.DateTimeField(auto_now_add=True)),
        ("started_on", models.DateTimeField(blank=True, null=True)),
        ("finished_on", models.DateTimeField(blank=True, null=True)),
        ("finished_successfully", models.BooleanField(default=False)),
        ("cancel_requested", models.BooleanField(default=False)),
        ("cancelled", models.BooleanField(default=False)),
        ("traceback", models.TextField(blank=True, null=True)),
        ("result_context", models.JSONField(blank=True, null=True)),
        ("language", models.CharField(blank=True, default="", max_length=20)),
        ("status_text", models.CharField(blank=True, default="", max_length=255)),
        ("percent", models.PositiveSmallIntegerField(default=0)),
        ("log", models.JSONField(default=list)),
        ("log_seq", models.PositiveIntegerField(default=0)),
        ("current_stage", models.IntegerField(default=-1)),
        ("stage_states", models.JSONField(default=dict)),
    ]


def _owner():
    return (
        "owner",
        models.ForeignKey(
            on_delete=django.db.models.deletion.CASCADE,
            related_name="+",
            to=settings.AUTH_USER_MODEL,
        ),
    )


class Migration(migrations.Migration):
    initial = True

    dependencies = [migrations.swappable_dependency(settings.AUTH_USER_MODEL)]

    operations = [
        migrations.CreateModel(
            name="PBNExport",
            fields=[
                *_liveops_04_fields(),
                ("target", models.CharField(default="PBN", max_length=100)),
                _owner(),
            ],
            options={"ordering": ["-created_on"], "abstract": False},
        ),
        migrations.CreateModel(
            name="ScoreImport",
            fields=[
                *_liveops_04_fields(),
                ("csv_name", models.CharField(default="scores.csv", max_length=200)),
                ("rows", models.PositiveIntegerField(default=6)),
                ("pause", models.FloatField(default=0.4)),
                _owner(),
            ],
            options={"ordering": ["-created_on"], "abstract": False},
        ),
    ]
