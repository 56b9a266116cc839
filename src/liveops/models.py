"""The abstract ``LiveOperation`` model that users subclass and give a ``run(p)``."""

from __future__ import annotations

import functools
import uuid
import warnings
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models, router, transaction
from django.urls import NoReverseMatch, reverse
from django.utils import translation
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from liveops._conf import get_settings
from liveops._state import ALL_REGIONS, Phase, StageState, StateView
from liveops.signals import announce, operation_enqueued

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    from liveops.progress import Progress

__all__ = ["LiveOperation", "Phase", "StageState", "get_operation_model"]


class LiveOperation(models.Model):
    """A long operation whose progress a page shows live; subclass it and write ``run()``."""

    #: Names of the stages ``run()`` goes through with ``p.stage(name)``, in order.
    stages: ClassVar[Sequence[str]] = ()
    #: Template for the result region; by default ``<app_label>/<model_name>_result.html``.
    result_template_name: ClassVar[str | None] = None
    #: Names of custom regions that ``run()`` fills with ``p.swap(name, …)``; the page
    #: shows them after the stages. Lower-case letters, digits, ``-`` and ``_``.
    extra_regions: ClassVar[Sequence[str]] = ()
    #: Whether a run stores its live progress, so a page opened mid-run shows it whole:
    #: True or False for this type, None (the default) to follow ``PERSIST_PROGRESS``.
    persist_progress: ClassVar[bool | None] = None

    id = models.UUIDField(_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("owner"),
    )
    created_on = models.DateTimeField(_("created on"), auto_now_add=True, db_index=True)
    started_on = models.DateTimeField(_("started on"), null=True, blank=True, editable=False)
    finished_on = models.DateTimeField(_("finished on"), null=True, blank=True, editable=False)
    finished_successfully = models.BooleanField(_("finished successfully"), default=False)
    cancel_requested = models.BooleanField(_("cancel requested"), default=False)
    cancelled = models.BooleanField(_("cancelled"), default=False)
    # Ended from outside run(): its process shut down, or went away (lost heartbeat).
    interrupted = models.BooleanField(_("interrupted"), default=False, editable=False)
    # The default lets a migration from a NULL-able traceback (django-liveops 0.4) fill
    # the old rows' NULLs; without one, Django's ALTER … SET NOT NULL fails on them.
    traceback = models.TextField(_("traceback"), blank=True, default="", editable=False)
    error_message = models.TextField(_("error message"), blank=True, editable=False)
    result_context = models.JSONField(_("result"), null=True, blank=True, editable=False)
    language = models.CharField(_("language"), max_length=35, blank=True)
    # Progress: the final picture is stored with the terminal state (and, in
    # PERSIST_PROGRESS mode, the live one during the run).
    status_text = models.TextField(_("status"), blank=True, editable=False)
    status_level = models.CharField(
        _("status level"), max_length=10, default="info", editable=False
    )
    percent = models.FloatField(_("percent"), null=True, blank=True, editable=False)
    log = models.JSONField(_("log tail"), default=list, blank=True, editable=False)
    log_seq = models.PositiveBigIntegerField(_("last log line"), default=0, editable=False)
    # What p.track() counted: done, total, label, unit, and since when (for the ETA).
    track = models.JSONField(_("tracked count"), default=dict, blank=True, editable=False)
    # Stage boundaries and bookkeeping: always written.
    stage_states = models.JSONField(_("stage states"), default=dict, blank=True, editable=False)
    attempt = models.PositiveIntegerField(_("attempt"), default=1, editable=False)
    # The last sign of life: set when a retry queues the attempt, then beaten while it runs.
    heartbeat_on = models.DateTimeField(_("heartbeat"), null=True, blank=True, editable=False)
    version = models.PositiveBigIntegerField(_("version"), default=0, editable=False)
    # What p.swap() put in the custom regions, by name: written at each swap.
    extra_html = models.JSONField(_("custom regions"), default=dict, blank=True, editable=False)
    # The operation p.chain_to() continued in: {"op": live token, "url", "title"}.
    chained_to = models.JSONField(_("continued as"), null=True, blank=True, editable=False)

    class Meta:
        abstract = True
        ordering = ["-created_on"]

    def __str__(self) -> str:
        return f"{capfirst(self._meta.verbose_name)} {str(self.pk)[:8]}"

    def get_absolute_url(self) -> str:
        """Return the URL of the operation's live page."""
        return reverse("liveops:operation", kwargs={"label": self.live_label(), "pk": self.pk})

    # --- to override -------------------------------------------------------------

    def run(self, p: Progress) -> None:
        """Do the work, reporting through ``p``; raise to fail."""
        raise NotImplementedError(f"{type(self).__name__} must define run(self, p).")

    def can_view(self, user: AbstractBaseUser | AnonymousUser) -> bool:
        """Return whether ``user`` may watch this operation: its owner or staff by default."""
        if not user.is_authenticated:
            return False
        return bool(user.pk == self.owner_id or getattr(user, "is_staff", False))

    @classmethod
    def viewable_by(cls, user: AbstractBaseUser | AnonymousUser) -> models.QuerySet[Any]:
        """Return the operations of this type ``user`` may watch (for the operations list).

        It must agree with ``can_view()``: override both together. By default staff get
        every operation, other users their own, anonymous users none. The live list
        pushes a socket every row only while this is every operation, and otherwise
        the rows of the user's own operations (see ``liveops.lists``).
        """
        manager = cls._default_manager
        if not user.is_authenticated:
            return manager.none()
        if getattr(user, "is_staff", False):
            return manager.all()
        return manager.filter(owner=user.pk)

    def can_cancel(self, user: AbstractBaseUser | AnonymousUser) -> bool:
        """Return whether ``user`` may cancel this operation: whoever may watch it, by default."""
        return self.can_view(user)

    def can_retry(self, user: AbstractBaseUser | AnonymousUser) -> bool:
        """Return whether ``user`` may start a new attempt once it ended: as ``can_cancel``."""
        return self.can_cancel(user)

    def on_restart(self) -> None:
        """Reset your own fields before a retry starts a new attempt (saved with it)."""

    def get_success_url(self) -> str | None:
        """Return where a watching page goes once the operation has finished successfully.

        None (the default) keeps the page where it is. A URL is shown as a "Continue"
        link in the result, which ``liveops.js`` follows when the page sees the
        operation finish live (not when it is opened on a finished operation, and not
        when a ``liveops:finished`` listener calls ``preventDefault()``).
        """
        return None

    # --- state -------------------------------------------------------------------

    def get_state(self) -> Phase:
        """Return where the operation is in its life, read from the fields."""
        if self.cancelled:
            return Phase.CANCELLED
        if self.finished_on is not None:
            return Phase.FINISHED_OK if self.finished_successfully else Phase.FINISHED_ERROR
        if self.started_on is not None:
            return Phase.STARTED
        return Phase.NOT_STARTED

    @classmethod
    def live_label(cls) -> str:
        """Return ``<app_label>.<model_name>``, which names this type on the wire."""
        return cls._meta.label_lower

    @classmethod
    def op_type_key(cls) -> str:
        """Return ``live_label()`` under its django-liveops 0.4 name (deprecated)."""
        warnings.warn(
            "LiveOperation.op_type_key() is deprecated; use live_label().",
            DeprecationWarning,
            stacklevel=2,
        )
        return cls.live_label()

    @property
    def live_token(self) -> str:
        """Return ``<app_label>.<model_name>:<pk>``, which names this operation on the wire."""
        return f"{self.live_label()}:{self.pk}"

    def get_language(self) -> str:
        """Return the language of its pages and its run: the one it started in, else the site's."""
        return self.language or settings.LANGUAGE_CODE

    def in_its_language(self, message: str) -> str:
        """Return the package's ``message`` translated into the operation's language.

        For the ends stored from outside ``run()`` (lost, interrupted, never queued): every
        page of the operation shows them, in the language it started in.
        """
        with translation.override(self.get_language()):
            return translation.gettext(message)

    @classmethod
    def stores_progress(cls) -> bool:
        """Return whether runs of this type store their live progress (``persist_progress``)."""
        if cls.persist_progress is not None:
            return cls.persist_progress
        return get_settings().PERSIST_PROGRESS

    @classmethod
    def region_names(cls) -> tuple[str, ...]:
        """Return every region of this type's page: the built-in ones, then ``extra_regions``."""
        return ALL_REGIONS + tuple(cls.extra_regions)

    def declared_stages(self) -> tuple[tuple[str, StageState], ...]:
        """Return each declared or started stage with its state."""
        names = list(self.stages) + [n for n in self.stage_states if n not in self.stages]
        return tuple((name, StageState(self.stage_states.get(name, "pending"))) for name in names)

    def queued_on(self) -> datetime | None:
        """Return when the current attempt was queued while no worker has started it; else None."""
        if self.get_state() is not Phase.NOT_STARTED:
            return None
        return self.heartbeat_on or self.created_on

    def to_view(self) -> StateView:
        """Return the state stored in the database as a view the renderer can draw."""
        return StateView(
            version=self.version,
            attempt=self.attempt,
            phase=self.get_state(),
            status_text=self.status_text,
            status_level=self.status_level,
            percent=self.percent,
            done=int(self.track.get("done", 0)),
            total=self.track.get("total"),
            track_label=str(self.track.get("label", "")),
            track_unit=str(self.track.get("unit", "item")),
            progress_since=self.track.get("since"),
            stages=self.declared_stages(),
            log_tail=tuple((int(seq), str(line)) for seq, line in self.log),
            result_context=self.result_context,
            error_message=self.error_message,
            traceback=self.traceback,
            interrupted=self.interrupted,
            cancel_requested=self.cancel_requested,
            chained_to=self.chained_to,
            extra_html=tuple(
                (name, str(self.extra_html[name]))
                for name in self.extra_regions
                if name in self.extra_html
            ),
            waiting_since=queued.timestamp() if (queued := self.queued_on()) else None,
        )

    # --- running -----------------------------------------------------------------

    def enqueue(self) -> None:
        """Run the operation through the configured runner once the current transaction commits.

        What then happens is up to the receivers of ``operation_enqueued``: the lists
        show it, and the runner takes it (``liveops.runners.dispatch_enqueued``).
        """
        if self._state.adding:
            raise ValueError(f"Save {self!r} before enqueueing it.")
        if not operation_enqueued.has_listeners(type(self)):  # nothing would ever run it
            raise ImproperlyConfigured(
                f"{type(self).__name__}.enqueue() needs the liveops app, whose runner takes "
                'the operation: add "liveops" to INSTALLED_APPS.'
            )
        sent = functools.partial(announce, operation_enqueued, type(self), pk=self.pk)
        transaction.on_commit(sent, using=router.db_for_write(type(self), instance=self))


def live_page_url(op: LiveOperation) -> str:
    """Return ``op.get_absolute_url()``, or "" when the project routes no page for it."""
    try:
        return op.get_absolute_url()
    except NoReverseMatch:  # the project did not include liveops.urls
        return ""


def get_operation_model(label: str) -> type[LiveOperation]:
    """Return the LiveOperation subclass named ``<app_label>.<model_name>``; raise LookupError."""
    try:
        model: Any = apps.get_model(label)
    except (LookupError, ValueError) as exc:
        raise LookupError(f"No model {label!r}.") from exc
    if not (isinstance(model, type) and issubclass(model, LiveOperation)):
        raise LookupError(f"{label!r} is not a LiveOperation model.")
    return model
