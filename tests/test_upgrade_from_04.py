"""A project written for django-liveops 0.4.x moves to this package and loses nothing.

tests/upgrade04/ is such a project (its README says how it is written). The module's
fixture copies it, creates its 0.4 tables on PostgreSQL from its 0.4 migration, checks
they have 0.4's columns, stores rows the way 0.4 left them (finished, failed, cancelled,
never started, running) with SQL, then follows docs/upgrading.md: ``check`` names the
fix (liveops.E022), ``makemigrations --noinput`` and ``migrate`` apply without a
question, ``liveops_upgrade`` fixes the old rows, and ``check`` passes with only the
0.4-settings warnings. The tests then serve it with daphne's runserver and a real Celery
worker of its own, as 0.4's guide has it, and watch its pages in Chromium.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_support import free_port, require_stack_services
from tests.pg_workers import WorkerProcess, wait_for

# In the PostgreSQL run (--ds=tests.settings_pg), which has Chromium, Redis and Celery too.
pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

PROJECT = Path(__file__).with_name("upgrade04")
PG = {
    "host": os.environ.get("LIVEOPS_TEST_PG_HOST", "127.0.0.1"),
    "port": os.environ.get("LIVEOPS_TEST_PG_PORT", "5432"),
    "user": os.environ.get("LIVEOPS_TEST_PG_USER", "postgres"),
}
REDIS_URL = os.environ.get("LIVEOPS_TEST_REDIS_UPGRADE", "redis://127.0.0.1:6379/12")
STALE_SECONDS = 3
USER, PASSWORD = "olga", "olga-pw-04"
COMMAND_TIMEOUT = 120

#: The columns 0.4.x's abstract model gives a table (its documented fields), and their types.
COLUMNS_04 = {
    "id": "uuid",
    "owner_id": "integer",
    "created_on": "timestamp with time zone",
    "started_on": "timestamp with time zone",
    "finished_on": "timestamp with time zone",
    "finished_successfully": "boolean",
    "cancel_requested": "boolean",
    "cancelled": "boolean",
    "traceback": "text",
    "result_context": "jsonb",
    "language": "character varying",
    "status_text": "character varying",
    "percent": "smallint",
    "log": "jsonb",
    "log_seq": "integer",
    "current_stage": "integer",
    "stage_states": "jsonb",
}

#: Rows as 0.4 stored them: percent 0 everywhere, no heartbeat, a NULL traceback on success.
ROWS_04 = {
    "finished": dict(
        started="now() - interval '2 days'",
        finished="now() - interval '2 days'",
        ok=True,
        result={"saved": 4, "errors": 2},
        stages={"Load": "done", "Validate": "done", "Save": "done"},
        csv="old.csv",
    ),
    "failed": dict(
        started="now() - interval '1 day'",
        finished="now() - interval '1 day'",
        traceback="Row 3 has no score column",
        stages={"Load": "done", "Validate": "failed"},
        csv="bad.csv",
    ),
    "cancelled": dict(
        started="now() - interval '3 hours'",
        finished="now() - interval '3 hours'",
        cancelled=True,
        stages={"Load": "cancelled"},
        csv="stopped.csv",
    ),
    "waiting": dict(csv="queued.csv"),  # never started: its task was queued under 0.4's name
    "running": dict(started="now() - interval '1 hour'", stages={"Load": "active"}, csv="run.csv"),
}


@dataclass
class Project:
    """The copied project, its database and environment, and what each upgrade step printed."""

    path: Path
    env: dict[str, str]
    database: str
    queue: str
    pks: dict[str, str] = field(default_factory=dict)
    export_pk: str = ""
    steps: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    columns_before: dict[str, str] = field(default_factory=dict)
    processes: list[WorkerProcess] = field(default_factory=list)
    url: str = ""

    def manage(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``manage.py *args`` in the project; record it under ``name``."""
        result = subprocess.run(
            [sys.executable, str(self.path / "manage.py"), *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        self.steps[name] = result
        return result

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run one statement on the project's database; return its rows."""
        import psycopg

        with psycopg.connect(dbname=self.database, autocommit=True, **PG) as conn:  # type: ignore[arg-type]
            cursor = conn.execute(statement, params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _admin_sql(statement: str) -> None:
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:  # type: ignore[arg-type]
        conn.execute(statement)  # type: ignore[arg-type]


def _store_04_rows(project: Project) -> None:
    """Insert the user and ROWS_04 as 0.4 wrote them."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    [(owner,)] = project.sql(
        "insert into auth_user (password, is_superuser, username, first_name, last_name, "
        "email, is_staff, is_active, date_joined) values (%s, false, %s, '', '', '', false, "
        "true, now()) returning id",
        PBKDF2PasswordHasher().encode(PASSWORD, "upgrade04salt", iterations=1000),
        USER,
    )
    for name, row in ROWS_04.items():
        pk = str(uuid.uuid4())
        project.pks[name] = pk
        project.sql(
            "insert into imports_scoreimport (id, owner_id, created_on, started_on, "
            "finished_on, finished_successfully, cancel_requested, cancelled, traceback, "
            "result_context, language, status_text, percent, log, log_seq, current_stage, "
            "stage_states, csv_name, rows, pause) values (%s, %s, now() - interval '3 days', "
            f"{row.get('started', 'null')}, {row.get('finished', 'null')}, %s, %s, %s, %s, "
            "%s, 'en', '', 0, '[]', 0, -1, %s, %s, 3, 0.1)",
            pk,
            owner,
            row.get("ok", False),
            bool(row.get("cancelled")),
            bool(row.get("cancelled")),
            row.get("traceback"),
            json.dumps(row["result"]) if "result" in row else None,
            json.dumps(row.get("stages", {})),
            row["csv"],
        )
    project.export_pk = str(uuid.uuid4())
    project.sql(
        "insert into imports_pbnexport (id, owner_id, created_on, started_on, finished_on, "
        "finished_successfully, cancel_requested, cancelled, traceback, result_context, "
        "language, status_text, percent, log, log_seq, current_stage, stage_states, target) "
        "values (%s, %s, now(), now(), now(), true, false, false, null, %s, 'en', '', 0, "
        "'[]', 0, -1, '{}', 'PBN')",
        project.export_pk,
        owner,
        json.dumps({"totals": {"books": 3, "articles": 5}, "target": "PBN"}),
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The 0.4 project, its rows stored as 0.4 left them, then upgraded step by step."""
    require_stack_services(REDIS_URL)
    tag = f"up04_{os.getpid()}"
    path = tmp_path_factory.mktemp("upgrade04") / "project"
    shutil.copytree(PROJECT, path, ignore=shutil.ignore_patterns("__pycache__"))
    env = {
        **os.environ,
        "PYTHONPATH": str(path),
        "DJANGO_SETTINGS_MODULE": "site04.settings",
        "UPGRADE04_PG_HOST": PG["host"],
        "UPGRADE04_PG_PORT": PG["port"],
        "UPGRADE04_PG_USER": PG["user"],
        "UPGRADE04_PG_NAME": tag,
        "UPGRADE04_REDIS_URL": REDIS_URL,
        "UPGRADE04_PREFIX": tag,
        "UPGRADE04_QUEUE": tag,
        "UPGRADE04_STALE_SECONDS": str(STALE_SECONDS),
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    _admin_sql(f'drop database if exists "{tag}"')
    _admin_sql(f'create database "{tag}"')
    project = Project(path, env, database=tag, queue=tag)
    try:
        # The tables as 0.4 made them: its migration, applied before this package looked.
        _ok(project.manage("0.4 tables", "migrate", "--skip-checks"))
        project.columns_before = _columns(project)
        _store_04_rows(project)
        project.manage("check before", "check")
        _ok(project.manage("makemigrations", "makemigrations", "--noinput"))
        _ok(project.manage("migrate", "migrate"))
        _ok(project.manage("liveops_upgrade", "liveops_upgrade"))
        _ok(project.manage("liveops_upgrade again", "liveops_upgrade"))
        project.manage("check after", "check")
        yield project
    finally:
        for process in project.processes:
            process.stop()
        _admin_sql(f'drop database if exists "{tag}" with (force)')


@pytest.fixture(scope="module")
def served(project: Project) -> Project:
    """The upgraded project served by daphne's runserver, with its Celery worker."""
    port = free_port()
    server = WorkerProcess(
        "upgrade04 runserver",
        [
            sys.executable,
            str(project.path / "manage.py"),
            "runserver",
            "--noreload",
            f"127.0.0.1:{port}",
        ],
        project.env,
    )
    worker = WorkerProcess(
        "upgrade04 celery",
        [
            *(sys.executable, "-m", "celery", "-A", "site04", "worker", "-Q", project.queue),
            *("--pool=solo", "--concurrency=1", "--loglevel=INFO"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ],
        project.env,
    )
    project.processes += [server, worker]
    project.url = f"http://127.0.0.1:{port}"
    worker.wait_for_output(r"ready\.", timeout=60)
    wait_for(
        lambda: _answers(f"{project.url}/static/liveops/liveops.js"),
        60,
        "runserver serves liveops.js",
        watch=[server],
    )
    return project


def _columns(project: Project) -> dict[str, str]:
    return dict(
        project.sql(
            "select column_name, data_type from information_schema.columns "
            "where table_name = 'imports_scoreimport'"
        )
    )


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _issue_ids(output: str) -> list[str]:
    return re.findall(r"\((liveops\.[EW]\d+|[a-z_.]+\.[EW]\d+)\)", output)


# --- the upgrade steps ------------------------------------------------------------------


def test_the_tables_are_those_of_04(project: Project) -> None:
    """The schema the test starts from has 0.4's columns, not ours (else it proves nothing)."""
    own = {"csv_name", "rows", "pause"}
    before = {k: v for k, v in project.columns_before.items() if k not in own}
    assert before == COLUMNS_04
    after = _columns(project)
    assert "current_stage" not in after
    assert after["percent"] == "double precision"


def test_check_names_the_fix_before_makemigrations(project: Project) -> None:
    before = project.steps["check before"]
    output = before.stdout + before.stderr
    assert before.returncode != 0, output
    assert _issue_ids(output).count("liveops.E022") == 2, output
    assert "makemigrations imports" in output
    assert "liveops_upgrade" in output


def test_migrations_apply_without_a_question_and_rows_are_upgraded(project: Project) -> None:
    made = _ok(project.steps["makemigrations"])
    assert "NOT PROVIDED" not in made, made
    assert "impossible" not in made.lower(), made
    assert "Remove field current_stage" in made
    assert "6 row(s) from django-liveops 0.4 upgraded." in project.steps["liveops_upgrade"].stdout
    assert (
        "0 row(s) from django-liveops 0.4 upgraded."
        in project.steps["liveops_upgrade again"].stdout
    )  # it changes nothing the second time
    rows = dict(
        project.sql(
            "select csv_name, json_build_array(percent, error_message, heartbeat_on is not null,"
            " traceback) from imports_scoreimport"
        )
    )
    assert rows["old.csv"] == [100, "", False, ""]  # a success shows 100 %, no NULL traceback
    assert rows["bad.csv"] == [
        None,
        "Row 3 has no score column",
        False,
        "Row 3 has no score column",
    ]
    assert rows["stopped.csv"][:3] == [None, "", False]
    assert rows["run.csv"][:3] == [None, "", True]  # a heartbeat, so the sweep can end it


def test_check_passes_with_only_the_04_settings_warnings(project: Project) -> None:
    after = project.steps["check after"]
    output = after.stdout + after.stderr
    assert after.returncode == 0, output
    assert sorted(set(_issue_ids(output))) == ["liveops.W009", "liveops.W010"], output
    assert "TOKEN_TTL_SECONDS" in output
    assert "GRANT_SECONDS" in output
    assert "REQUIRED_GROUP" in output
    assert "can_view()" in output


def test_the_running_row_is_ended_as_lost_by_the_sweep(project: Project) -> None:
    time.sleep(STALE_SECONDS + 0.5)  # its new heartbeat goes stale: no run beats it
    swept = _ok(project.manage("sweep", "liveops_sweep"))
    assert "imports.ScoreImport: 1 lost operation(s) ended." in swept, swept
    [(interrupted, finished)] = project.sql(
        "select interrupted, finished_on is not null from imports_scoreimport where id = %s",
        project.pks["running"],
    )
    assert interrupted
    assert finished


# --- the pages, the worker ----------------------------------------------------------------


@pytest.fixture(scope="module")
def page(served: Project, browser: Any) -> Iterator[Any]:
    """A Chromium page logged in as the rows' owner."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{served.url}/accounts/login/")
    page.fill("input[name=username]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.click("[type=submit], button")
    page.wait_for_load_state()
    yield page
    context.close()


def _live_url(project: Project, label: str, pk: str) -> str:
    return f"{project.url}/live/imports.{label}/{pk}/"


def _region(page: Any, name: str) -> str:
    return str(page.locator(f"[id$='-{name}']").first.inner_text())


def test_old_rows_show_their_state_on_their_04_host_page(served: Project, page: Any) -> None:
    expected = {
        "finished": ("Imported 4 rows from old.csv.", "Skipped 2 rows"),
        "failed": ("Row 3 has no score column",),
        "cancelled": ("Cancelled",),
    }
    for name, texts in expected.items():
        page.goto(_live_url(served, "scoreimport", served.pks[name]))
        assert page.locator("#site-nav").count() == 1  # base_template: the site's navigation
        assert "Score import" in page.locator("#host-heading").inner_text()
        link = page.locator("#permalink").get_attribute("href")  # {% url 'liveops:live' %}
        assert link, page.content()
        assert page.url.endswith(link), (link, page.url)
        body = page.locator("[data-liveop]").first
        for text in texts:
            body.get_by_text(text, exact=False).first.wait_for(timeout=10_000)
        assert not re.search(r"(?<![\d.])0\s*%", body.inner_text()), body.inner_text()
    page.goto(_live_url(served, "pbnexport", served.export_pk))
    assert "Export to PBN" in page.locator("#host-heading").inner_text()  # host_template_name
    page.locator(".export-totals").wait_for(timeout=10_000)
    assert page.locator(".export-totals li").all_inner_texts() == ["books: 3", "articles: 5"]
    assert page.locator(".export-target").inner_text() == "PBN (3 books)"


def test_a_new_operation_runs_live_on_the_04_pages(served: Project, page: Any) -> None:
    page.goto(f"{served.url}/imports/new/")
    page.fill("input[name=csv_name]", "new.csv")
    page.fill("input[name=rows]", "8")
    page.fill("input[name=pause]", "0.4")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/live/imports\.scoreimport/"))
    page.evaluate(
        """() => { window.__percents = [];
        new MutationObserver(() => document.querySelectorAll('.liveops-percent')
          .forEach((el) => { const t = el.textContent.trim();
            if (window.__percents.at(-1) !== t) window.__percents.push(t); }))
          .observe(document, {subtree: true, childList: true, characterData: true}); }"""
    )
    assert page.locator("#site-nav").count() == 1
    page.locator(".import-summary").wait_for(timeout=60_000)
    summary = page.locator(".import-summary").inner_text()
    assert re.fullmatch(r"Imported \d+ rows from new\.csv\.", summary), summary
    percents: list[str] = page.evaluate("window.__percents")
    assert len(percents) >= 2, percents  # it changed in place while the page was open
    pk = page.url.rstrip("/").rsplit("/", 1)[1]
    page.locator("#finished-note").wait_for(timeout=10_000)  # the 0.4 event reached the page
    path = f"/live/imports.scoreimport/{pk}/"
    assert page.locator("#finished-note").inner_text() == f"FINISHED_OK {pk} {path}"


def test_a_task_queued_under_the_04_name_runs_in_the_worker(served: Project) -> None:
    from celery import Celery

    app = Celery("upgrade04-sender", broker=REDIS_URL)
    app.send_task(
        "liveops.runner._celery_task",
        args=("imports", "ScoreImport", served.pks["waiting"]),
        queue=served.queue,
    )
    wait_for(
        lambda: served.sql(
            "select finished_successfully from imports_scoreimport where id = %s and "
            "finished_on is not null",
            served.pks["waiting"],
        ),
        60,
        "the operation queued under 0.4's task name finished",
        watch=served.processes,
    )
    [(ok, result)] = served.sql(
        "select finished_successfully, result_context from imports_scoreimport where id = %s",
        served.pks["waiting"],
    )
    assert ok
    assert result == {"saved": 2, "errors": 1}
