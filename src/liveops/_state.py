"""The live state of one operation: pure data, cheap to change from ``run()``.

``LiveState`` is written by the progress API on the operation's thread and read
by the publisher on another, so every change happens under one lock and bumps a
version. The publisher takes a frozen ``StateView`` of it plus the regions that
changed since its last flush; the renderer turns a view into fragments.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

# Regions of the page the server renders; "connection" belongs to the client.
#: "notice" says what a viewer asked for meanwhile ("Cancelling…"); it is rendered from
#: the database, so a run's live ticks never send it, only its end.
ALL_REGIONS: tuple[str, ...] = ("status", "notice", "progress", "stages", "log", "result")
STATUS_LEVELS = ("info", "success", "warning", "error")
# Hostile or careless callers can pass megabytes; a page region has no use for them.
STATUS_MAX = 1_000
LOG_LINE_MAX = 2_000
ERROR_MAX = 10_000
STAGE_NAME_MAX = 200  # a name for people to read, shown in the stages region
#: p.swap() content is sent with its region and stored; a page region has no use for more.
EXTRA_HTML_MAX = 100_000


class Phase(StrEnum):
    """Where an operation is in its life; what ``LiveOperation.get_state()`` returns."""

    NOT_STARTED = "NOT_STARTED"
    STARTED = "STARTED"
    FINISHED_OK = "FINISHED_OK"
    FINISHED_ERROR = "FINISHED_ERROR"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        """Return whether the operation has ended, one way or another."""
        return self in {Phase.FINISHED_OK, Phase.FINISHED_ERROR, Phase.CANCELLED}


class StageState(StrEnum):
    """The state of one declared stage."""

    PENDING = "pending"
    ACTIVE = "active"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


def clip(text: object, limit: int) -> str:
    """Return ``text`` as a string of at most ``limit`` characters."""
    value = str(text)
    return value if len(value) <= limit else value[: limit - 1] + "…"


# What a stage still open at the end becomes, by how the operation ended.
_OPEN_STAGE_ENDS: Mapping[Phase, StageState] = {
    Phase.FINISHED_OK: StageState.DONE,
    Phase.FINISHED_ERROR: StageState.FAILED,
    Phase.CANCELLED: StageState.CANCELLED,
}


def close_open_stages(
    stage_states: Mapping[str, str | StageState], phase: Phase
) -> dict[str, StageState]:
    """Return ``stage_states`` with the active stage given the state the end ``phase`` means."""
    ended = _OPEN_STAGE_ENDS[phase]
    return {
        name: ended if StageState(state) is StageState.ACTIVE else StageState(state)
        for name, state in stage_states.items()
    }


def json_values(context: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``context`` as JSON keeps it (dates become ISO strings); raise TypeError.

    The live page and a later snapshot must render the same values: store and show
    what JSON keeps, and fail in ``p.result()``, not in the database.
    """
    try:
        return dict(json.loads(json.dumps(dict(context), cls=DjangoJSONEncoder)))
    except TypeError as exc:
        raise TypeError(f"p.result() takes JSON-serializable values: {exc}") from exc


@dataclass(frozen=True)
class StateView:
    """An immutable copy of an operation's state at one version, ready to render."""

    version: int = 0
    attempt: int = 1
    phase: Phase = Phase.NOT_STARTED
    status_text: str = ""
    status_level: str = "info"
    percent: float | None = None
    done: int = 0
    total: int | None = None
    track_label: str = ""
    track_unit: str = "item"
    stages: tuple[tuple[str, StageState], ...] = ()
    log_tail: tuple[tuple[int, str], ...] = ()
    result_context: Mapping[str, Any] | None = None
    error_message: str = ""
    traceback: str = ""
    interrupted: bool = False
    cancel_requested: bool = False
    #: When the progress bar last started from empty (epoch seconds), for the ETA; live only.
    progress_since: float | None = None
    #: The operation this one continued in (``p.chain_to``): {"op", "url", "title"}.
    chained_to: Mapping[str, str] | None = None
    #: The custom regions ``p.swap()`` filled: (name, trusted HTML) pairs.
    extra_html: tuple[tuple[str, str], ...] = ()
    #: When the attempt was queued (epoch seconds), while no worker has started it.
    waiting_since: float | None = None


@dataclass(frozen=True)
class Changes:
    """What changed since the previous flush: the view, the dirty regions, new log lines."""

    view: StateView
    regions: frozenset[str]
    new_log: tuple[tuple[int, str], ...]


class LiveState:
    """Mutable live state of one running operation; every method is thread-safe.

    Changes set plain attributes under a lock (a few hundred nanoseconds); the
    immutable ``StateView`` is built only when the publisher takes the changes,
    at most ``THROTTLE_HZ`` times a second. A change that turns the state dirty calls
    ``on_dirty`` (the run's channel, which schedules one flush).
    """

    def __init__(
        self,
        view: StateView | None = None,
        log_tail_size: int = 200,
        regions: tuple[str, ...] = ALL_REGIONS,
    ) -> None:
        view = view or StateView()
        #: Every region of the operation (the built-in ones and its ``extra_regions``).
        self.regions = regions
        self._fields: dict[str, Any] = dict(view.__dict__)
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._new_log: list[tuple[int, str]] = []
        self._log: deque[tuple[int, str]] = deque(view.log_tail, maxlen=log_tail_size)
        self._log_seq = view.log_tail[-1][0] if view.log_tail else 0
        self._held = False
        self.log_tail_size = log_tail_size
        self.on_dirty: Callable[[], None] = lambda: None

    # --- changes (called from run()'s thread) -------------------------------------

    def _change(self, region: str) -> bool:
        """Bump the version and mark ``region`` dirty; return True when it was clean."""
        self._fields["version"] += 1
        was_clean = not self._dirty
        self._dirty.add(region)
        if was_clean and not self._held:
            self.on_dirty()
        return was_clean

    def set_status(self, text: str, level: str) -> bool:
        """Set the status line; return True when the state turned dirty."""
        with self._lock:
            self._fields["status_text"] = clip(text, STATUS_MAX)
            self._fields["status_level"] = level
            return self._change("status")

    def set_percent(self, percent: float) -> bool:
        """Set the percent shown (already clamped); return True when the state turned dirty."""
        with self._lock:
            fields = self._fields
            if fields["percent"] is None or percent < fields["percent"] or fields["total"]:
                fields["progress_since"] = time.time()  # a new bar: its ETA starts now
            fields["percent"] = percent
            fields["total"] = None
            fields["done"] = 0
            return self._change("progress")

    def set_count(self, done: int, total: int | None, label: str, unit: str) -> bool:
        """Set a tracked count; with a total, the percent follows from it."""
        with self._lock:
            fields = self._fields
            if done == 0 or fields["progress_since"] is None:
                fields["progress_since"] = time.time()  # a new count: its ETA starts now
            fields["done"] = done
            fields["total"] = total
            fields["percent"] = min(100.0, 100.0 * done / total) if total else None
            fields["track_label"] = label
            fields["track_unit"] = unit
            return self._change("progress")

    def add_log(self, lines: Iterable[object]) -> bool:
        """Append log lines, each with the next sequence number."""
        with self._lock:
            for line in lines:
                self._log_seq += 1
                entry = (self._log_seq, clip(line, LOG_LINE_MAX))
                self._log.append(entry)
                self._new_log.append(entry)
            # Only the tail can ever be shown; do not let a burst grow without bound.
            if len(self._new_log) > 2 * self.log_tail_size:
                del self._new_log[: -self.log_tail_size]
            return self._change("log")

    def set_stages(self, stages: tuple[tuple[str, StageState], ...]) -> bool:
        """Replace the stage list with its states."""
        with self._lock:
            self._fields["stages"] = stages
            return self._change("stages")

    def set_extra(self, region: str, html: str) -> bool:
        """Replace the content of the custom region ``region``."""
        with self._lock:
            extra = dict(self._fields["extra_html"])
            extra[region] = html
            self._fields["extra_html"] = tuple(extra.items())
            return self._change(region)

    def start(self) -> None:
        """Enter the started phase (after a successful claim)."""
        with self._lock:
            self._fields["phase"] = Phase.STARTED
            self._fields["waiting_since"] = None
            self._change("status")
            self._dirty.add("progress")

    def finish(
        self,
        phase: Phase,
        *,
        result_context: Mapping[str, Any] | None = None,
        error_message: str = "",
        traceback: str = "",
        interrupted: bool = False,
        stages: tuple[tuple[str, StageState], ...] | None = None,
        chained_to: Mapping[str, str] | None = None,
    ) -> StateView:
        """Enter a terminal phase; every region becomes dirty. Return the terminal view.

        The terminal state is held back from ``take_changes()`` until ``release()``,
        which the worker calls once the database has committed it.
        """
        assert phase.is_terminal
        with self._lock:
            self._held = True
            fields = self._fields
            fields.update(
                phase=phase,
                result_context=result_context,
                error_message=error_message,
                traceback=traceback,
                interrupted=interrupted,
                chained_to=chained_to,
            )
            if phase is Phase.FINISHED_OK and fields["total"] is None and not fields["done"]:
                fields["percent"] = 100.0  # an unsized count keeps showing its count
            if stages is not None:
                fields["stages"] = stages
            self._change("status")
            self._dirty.update(self.regions)
            return self._view()

    def touch(self) -> None:
        """Mark the status dirty without a change, so the next flush re-sends the picture."""
        with self._lock:
            self._dirty.add("status")

    def release(self) -> None:
        """Let ``take_changes()`` return the held terminal state."""
        with self._lock:
            self._held = False

    # --- reads (called from the publisher's thread) ------------------------------

    @property
    def version(self) -> int:
        """Return the current version."""
        return int(self._fields["version"])

    @property
    def is_held(self) -> bool:
        """Return whether a terminal state waits for ``release()``."""
        return self._held

    @property
    def is_dirty(self) -> bool:
        """Return whether a change is waiting to be taken."""
        return bool(self._dirty) and not self._held

    @property
    def log_seq(self) -> int:
        """Return the sequence number of the last log line."""
        return self._log_seq

    def current(self) -> StateView:
        """Return the current view with the whole log tail."""
        with self._lock:
            return self._view()

    def take_changes(self) -> Changes | None:
        """Return what changed since the last call and mark everything clean."""
        with self._lock:
            if not self._dirty or self._held:
                return None
            changes = Changes(self._view(), frozenset(self._dirty), tuple(self._new_log))
            self._dirty.clear()
            self._new_log.clear()
            return changes

    def _view(self) -> StateView:
        return StateView(**{**self._fields, "log_tail": tuple(self._log)})
