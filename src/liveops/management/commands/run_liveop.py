"""``manage.py run_liveop``: create an operation and run it here, with progress in the terminal.

The operation runs through ``execute()`` — claimed, heartbeat, stored end, published
to any viewer of its page — on a worker thread, so that the main thread can draw the
progress and take Ctrl-C. The progress is read from the run's own ``LiveState``
(found through ``liveness.heartbeat.runs()``), a few times a second; nothing is
added to the run's path.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    DjangoHelpFormatter,
    OutputWrapper,
)
from django.db import connections, models
from django.utils import timezone
from django.utils.formats import number_format

from liveops._execution import Run, execute, sigterm_as_exit
from liveops._fragments import count_text
from liveops._liveness import heartbeat
from liveops._state import Phase, StateView
from liveops.lifecycle import request_cancel
from liveops.models import LiveOperation, get_operation_model

__all__ = ["EXIT_CANCELLED", "EXIT_FAILED", "Command"]

#: Exit status of an operation that failed, or was interrupted.
EXIT_FAILED = 1
#: Exit status of an operation that was cancelled (128 + SIGINT, as shells report Ctrl-C).
EXIT_CANCELLED = 130
#: How often the terminal is brought up to date, in seconds.
POLL_INTERVAL = 0.1
#: Plain output shows at most this many log lines a second; it counts the rest.
LOG_LINES_PER_SECOND = 5
#: Plain output shows an unsized count at most this often, in seconds.
COUNT_EVERY = 2.0
#: Fields of ``LiveOperation`` itself a command line may set; the rest are bookkeeping.
BASE_FIELDS = frozenset({"language"})

HELP = f"""\
Create an operation of the LiveOperation model app_label.ModelName from --field=value
options (any editable field of the model, and --language) and run it in this process,
showing its progress: a bar when tqdm is installed (pip install django-liveops[cli]),
plain lines otherwise. Viewers of its page see it live, as with any runner.
Ctrl-C asks the operation to cancel (run() stops at its next p.check_cancelled()) and
waits for it to end; a second Ctrl-C exits at once, without waiting: the operation is
then ended as interrupted on the way out, or — if the process is killed instead — as
lost once its heartbeat is older than LIVEOPS['STALE_SECONDS'].
Exit status: 0 finished, {EXIT_FAILED} failed or interrupted, {EXIT_CANCELLED} cancelled
(or given up by a second Ctrl-C)."""


class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's option order, and the help text's own line breaks."""


class Command(BaseCommand):
    """Create and run one live operation in the foreground."""

    help = HELP

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        """Return a parser that keeps the ``--field=value`` options it does not know."""
        # No abbreviations: --own=x must not quietly become --owner, nor a field an option.
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _HelpFormatter)
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parse_known_args = parser.parse_known_args

        def parse_args(
            args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
        ) -> argparse.Namespace:
            known, extra = parse_known_args(args, namespace)
            known.field_args = extra
            return known

        parser.parse_args = parse_args  # type: ignore[method-assign,assignment]
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        """Add the model label, ``--owner`` and ``--plain``."""
        parser.add_argument("model_label", metavar="app_label.ModelName")
        parser.add_argument(
            "--owner",
            metavar="USERNAME",
            help="The existing user who owns the operation (never created).",
        )
        parser.add_argument(
            "--plain", action="store_true", help="Plain lines, even when tqdm is installed."
        )
        parser.epilog = "Field values: --name=value (or --name-with-dashes=value), one per field."

    def handle(self, *args: Any, **options: Any) -> None:
        """Create the operation, run it, show it, and end as it ended."""
        try:
            model = get_operation_model(options["model_label"])
        except LookupError as exc:
            raise CommandError(str(exc)) from exc
        field_args = options.get("field_args") or []
        op = model(**parse_field_values(model, field_args))
        # The command line again, for the one an owner error suggests (with --owner).
        again = [options["model_label"], *field_args, *(["--plain"] if options["plain"] else [])]
        op.owner_id = resolve_owner(model, options["owner"], again)
        try:
            op.full_clean(exclude=["owner"])
        except ValidationError as exc:
            raise CommandError(describe_invalid(exc)) from exc
        op.save()
        self.stdout.write(f"Running {op} ({op.live_token}). Ctrl-C cancels it.")
        display = make_display(self.stdout, plain=options["plain"])
        outcome = Outcome()
        worker = threading.Thread(
            target=execute_in_thread,
            args=(op.live_label(), op.pk, outcome),
            name=f"run_liveop-{op.pk}",
            daemon=True,  # a second Ctrl-C must not wait for it
        )
        with sigterm_as_exit():
            worker.start()
            self._follow(op, outcome, display)
        op.refresh_from_db()
        display.show(op.to_view())
        display.close()
        self._report(op, outcome, options["verbosity"])

    def _follow(self, op: LiveOperation, outcome: Outcome, display: Display) -> None:
        """Show the run's progress until it ends; the first Ctrl-C cancels, the second exits."""
        run: Run | None = None
        cancel_wanted = cancel_sent = False
        # Not Thread.join(): on Python 3.11 a Ctrl-C inside it marks the thread stopped.
        while not outcome.done.is_set():
            try:
                # Inside the try: a second Ctrl-C while the request is sent still exits.
                if cancel_wanted and not cancel_sent:
                    cancel_sent = True
                    request_cancel(op)
                    display.note(f"Cancelling {op}… (Ctrl-C again to exit without waiting)")
                outcome.done.wait(POLL_INTERVAL)
                run = run or find_run(op)
                if run is not None:
                    display.show(run.state.current())
            except KeyboardInterrupt:
                if cancel_wanted:
                    display.close()
                    raise CommandError(
                        f"Stopped waiting for {op}: it ends as interrupted as this process exits.",
                        returncode=EXIT_CANCELLED,
                    ) from None
                cancel_wanted = True

    def _report(self, op: LiveOperation, outcome: Outcome, verbosity: int) -> None:
        phase = op.get_state()
        if phase is Phase.FINISHED_OK:
            self.stdout.write(self.style.SUCCESS(f"{op} finished."))
            for key, value in (op.result_context or {}).items():
                self.stdout.write(f"{key}: {format_value(value)}")
            return
        if phase is Phase.CANCELLED:
            raise CommandError(f"{op} was cancelled.", returncode=EXIT_CANCELLED)
        if phase is Phase.FINISHED_ERROR:
            if op.traceback and verbosity >= 2:
                self.stderr.write(op.traceback)
            raise CommandError(f"{op} failed: {failure_message(op)}", returncode=EXIT_FAILED)
        # execute() itself raised (the database went away…), or never ran it.
        why = f": {outcome.error!r}" if outcome.error is not None else ""
        raise CommandError(f"{op} did not run to its end{why}", returncode=EXIT_FAILED)


# --- creating the operation ---------------------------------------------------------


def settable_fields(model: type[LiveOperation]) -> dict[str, models.Field[Any, Any]]:
    """Return the fields a command line may set, by name."""
    own = {f.name for f in LiveOperation._meta.local_fields} - BASE_FIELDS
    return {
        f.name: f
        for f in model._meta.concrete_fields
        if f.editable and not f.primary_key and f.name not in own and f.name != "owner"
    }


def parse_field_values(model: type[LiveOperation], field_args: Sequence[str]) -> dict[str, Any]:
    """Turn ``--name=value`` strings into attribute values; raise CommandError naming the field."""
    fields = settable_fields(model)
    allowed = ", ".join(f"--{name}" for name in fields) or "none"
    values: dict[str, Any] = {}
    for arg in field_args:
        if not arg.startswith("--") or "=" not in arg:
            raise CommandError(
                f"Unexpected argument {arg!r}: give field values as --name=value "
                f"(fields of {model.__name__}: {allowed})."
            )
        option, raw = arg[2:].split("=", 1)
        name = option.replace("-", "_")
        field = fields.get(name)
        if field is None:
            raise CommandError(
                f"Unknown field --{option}: {model.__name__} has no field {name!r} "
                f"a command line may set (its fields: {allowed})."
            )
        try:
            values[field.attname] = convert(field, raw)
        except ValidationError as exc:
            raise CommandError(f"Invalid --{option}: {' '.join(exc.messages)}") from exc
    return values


def convert(field: models.Field[Any, Any], raw: str) -> Any:
    """Return ``raw`` as a value of ``field``; raise ValidationError."""
    if raw == "" and field.null and not field.empty_strings_allowed:
        return None
    if isinstance(field, models.JSONField):
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ValidationError(f"{raw!r} is not valid JSON ({exc}).") from exc
    if isinstance(field, models.ForeignKey):
        return field.target_field.to_python(raw)
    value = field.to_python(raw)
    if isinstance(field, models.DateTimeField) and value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value)  # read in the current time zone
    return value


def resolve_owner(
    model: type[LiveOperation], username: str | None, args: Sequence[str] = ()
) -> Any:
    """Return the pk of the existing user named ``username``, or None when the model allows it.

    ``args`` are the command's other arguments, for the command line an error suggests.
    """
    field = model._meta.get_field("owner")
    user_model: Any = field.related_model
    if username is None:
        if field.null:
            return None
        raise CommandError(
            f"{model.__name__} needs an owner: name an existing user with --owner USERNAME "
            f"(run_liveop does not create users). {how_to_name_an_owner(user_model, args)}"
        )
    username_field = user_model.USERNAME_FIELD
    try:
        user = user_model._default_manager.get(**{username_field: username})
    except user_model.DoesNotExist:
        raise CommandError(
            f"No user with {username_field} {username!r}; run_liveop does not create users. "
            f"{how_to_name_an_owner(user_model, args)}"
        ) from None
    return user.pk


def how_to_name_an_owner(user_model: Any, args: Sequence[str]) -> str:
    """Return the command line to run: with an existing user, else after creating one."""
    example = example_owner(user_model)
    if example is not None:
        return f"For example:\n\n    {command_line(args, example)}"
    return (
        "There are no users yet: create one, then run the operation as that user:\n\n"
        f"    python manage.py createsuperuser\n    {command_line(args, 'USERNAME')}"
    )


def example_owner(user_model: Any) -> str | None:
    """Return the username of an active user to suggest: the first superuser, else the first."""
    users = user_model._default_manager.order_by("pk")
    fields = {f.name for f in user_model._meta.get_fields()}
    if "is_active" in fields:
        users = users.filter(is_active=True)
    choices = [users.filter(is_superuser=True)] if "is_superuser" in fields else []
    for candidates in [*choices, users]:
        name = candidates.values_list(user_model.USERNAME_FIELD, flat=True).first()
        if name is not None:
            return str(name)
    return None


def command_line(args: Sequence[str], owner: str) -> str:
    """Return ``python manage.py run_liveop`` with ``args`` and ``--owner owner``, shell-quoted."""
    label, *rest = args or ["app_label.ModelName"]
    words = ["python", "manage.py", "run_liveop", label, "--owner", owner, *rest]
    return shlex.join(words)


def describe_invalid(exc: ValidationError) -> str:
    """Return the validation errors of a new operation, each after the option it came from."""
    if not hasattr(exc, "error_dict"):
        return "Invalid operation: " + " ".join(exc.messages)
    parts = []
    for name, errors in exc.message_dict.items():
        where = "" if name == "__all__" else f"--{name}: "
        parts.append(where + " ".join(errors))
    return "Invalid operation: " + "; ".join(parts)


# --- running it -------------------------------------------------------------------


class Outcome:
    """What the worker thread leaves for the main thread."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


def execute_in_thread(label: str, pk: Any, outcome: Outcome) -> None:
    """Run the operation through ``execute()``; keep what escapes it."""
    try:
        execute(label, pk)
    except BaseException as exc:  # a run's own failure is stored; this is anything else
        outcome.error = exc
    finally:
        connections.close_all()
        outcome.done.set()


def find_run(op: LiveOperation) -> Run | None:
    """Return this process's run of ``op`` once it has started."""
    for run in heartbeat.runs():
        if isinstance(run, Run) and type(run.op) is type(op) and run.op.pk == op.pk:
            return run
    return None


def failure_message(op: LiveOperation) -> str:
    """Return what went wrong: the message, else the traceback's last line."""
    if op.error_message:
        return op.error_message
    lines = [line for line in op.traceback.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def format_value(value: Any) -> str:
    """Return a result value as one line."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


# --- showing it -------------------------------------------------------------------


class Display:
    """Turn successive views of a run into terminal output."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._log_seq = 0
        self._window = 0.0
        self._shown_in_window = 0
        self._skipped = 0

    def show(self, view: StateView) -> None:
        """Bring the output up to date with ``view``."""
        self._progress(view)
        self._log(view)

    def note(self, text: str) -> None:
        """Print a line of the command's own."""
        self._write(text)

    def close(self) -> None:
        """Finish the output."""
        self._flush_skipped()

    def _progress(self, view: StateView) -> None:
        raise NotImplementedError

    def _log(self, view: StateView) -> None:
        now = time.monotonic()
        if now - self._window >= 1.0:
            self._flush_skipped()
            self._window, self._shown_in_window = now, 0
        for seq, line in view.log_tail:
            if seq <= self._log_seq:
                continue
            self._log_seq = seq
            if self._shown_in_window < LOG_LINES_PER_SECOND:
                self._shown_in_window += 1
                self._write(f"| {line}")
            else:
                self._skipped += 1

    def _flush_skipped(self) -> None:
        if self._skipped:
            self._write(f"| … {self._skipped} more log line(s) not shown")
            self._skipped = 0


class PlainDisplay(Display):
    """Plain lines: status changes, each 10 % step, a throttled count, some log lines."""

    def __init__(self, write: Callable[[str], None]) -> None:
        super().__init__(write)
        self._status = ""
        self._tenth = -1
        self._count_at = float("-inf")
        self._count = 0

    def _progress(self, view: StateView) -> None:
        if view.status_text and view.status_text != self._status:
            self._status = view.status_text
            level = "" if view.status_level in {"info", "success"} else f"{view.status_level}: "
            self._write(f"{level}{view.status_text}")
        if view.percent is not None:
            tenth = int(view.percent // 10)
            if tenth != self._tenth:
                self._tenth = tenth
                self._write(_progress_text(view))
        elif view.done and view.done != self._count:
            now = time.monotonic()
            if now - self._count_at >= COUNT_EVERY or view.phase.is_terminal:
                self._count_at, self._count = now, view.done
                self._write(_progress_text(view))


class BarDisplay(Display):
    """A tqdm bar: percent, or done/total when the run tracks items; the status as its text."""

    def __init__(self, tqdm_module: Any) -> None:
        self._tqdm = tqdm_module.tqdm
        super().__init__(self._tqdm.write)
        self._bar: Any = None
        self._shape: tuple[Any, ...] = ()

    def _progress(self, view: StateView) -> None:
        if view.total is not None or (view.percent is None and view.done):
            shape: tuple[Any, ...] = ("count", view.total, view.track_unit)
            n: float = view.done
        elif view.percent is not None:
            shape, n = ("percent",), round(view.percent, 1)
        else:
            shape, n = ("percent",), 0
        if shape != self._shape:
            self._reopen(shape)
        bar = self._bar
        changed = bar.n != n
        desc = view.status_text[:60]
        if bar.desc != desc:
            bar.set_description_str(desc, refresh=False)
            changed = True
        if changed:
            bar.n = n
            bar.refresh()

    def _reopen(self, shape: tuple[Any, ...]) -> None:
        if self._bar is not None:
            self._bar.close()
        self._shape = shape
        if shape[0] == "percent":
            self._bar = self._tqdm(
                total=100, bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}]"
            )
        else:
            self._bar = self._tqdm(total=shape[1], unit=f" {shape[2]}")

    def note(self, text: str) -> None:
        """Print a line above the bar."""
        self._tqdm.write(text)

    def close(self) -> None:
        """Close the bar."""
        super().close()
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _progress_text(view: StateView) -> str:
    label = f"{view.track_label}: " if view.track_label else ""
    # The unit as the page words it: "3/40 rows", "1 file", translated "items".
    if view.total is not None:
        done, total = (
            number_format(view.done, force_grouping=True),
            count_text(view.total, view.track_unit),
        )
        return f"{label}{done}/{total} ({view.percent or 0:.0f}%)"
    if view.percent is None:
        return f"{label}{count_text(view.done, view.track_unit)}"
    return f"{view.percent:.0f}%"


def make_display(stdout: OutputWrapper, *, plain: bool) -> Display:
    """Return a bar when tqdm is installed (and not ``plain``), else plain lines."""
    if not plain:
        try:
            return BarDisplay(importlib.import_module("tqdm"))
        except ImportError:
            pass
    return PlainDisplay(stdout.write)
