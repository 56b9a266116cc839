"""The live page of an operation, the live list of operations, and a mixin that starts one."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any
from uuid import UUID

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    HttpResponseRedirect,
    JsonResponse,
)
from django.http.response import HttpResponseBase
from django.utils import translation
from django.utils.functional import Promise
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.generic import CreateView, DetailView, ListView

from liveops._conf import raw_settings
from liveops._fragments import snake_class_name
from liveops._liveness import ensure_fresh, expire_stale_among
from liveops.lifecycle import request_cancel, request_retry
from liveops.lists import list_queryset
from liveops.models import LiveOperation, get_operation_model

__all__ = [
    "CancelView",
    "LiveOperationCreateMixin",
    "LiveOperationListView",
    "LiveOperationView",
    "RetryView",
]


def _viewable_operation(request: HttpRequest, label: str, pk: UUID) -> LiveOperation:
    """Return the operation named by the URL, if ``request.user`` may watch it; else 404."""
    try:
        model = get_operation_model(label)
    except LookupError as exc:
        raise Http404("No such operation type.") from exc
    op = model._default_manager.filter(pk=pk).first()
    if op is None or not op.can_view(request.user):
        raise Http404("No such operation.")
    return op


def _base_template() -> str:
    """Return ``LIVEOPS["BASE_TEMPLATE"]`` (a 0.4 setting), by default ``"base.html"``."""
    raw = raw_settings()
    value = raw.get("BASE_TEMPLATE") if isinstance(raw, dict) else None
    return value if isinstance(value, str) and value else "base.html"


class LiveOperationView(LoginRequiredMixin, DetailView):  # type: ignore[type-arg]
    """Show one operation live; 404 for anyone its ``can_view()`` refuses."""

    template_name = "liveops/operation_detail.html"
    context_object_name = "operation"

    def get_object(self, queryset: Any = None) -> LiveOperation:
        """Return the operation named by the URL, if the user may watch it."""
        # A subclass with ``model`` routed by pk alone, as django-liveops 0.4's guide had it.
        label: str = self.kwargs.get("label") or (
            self.model._meta.label_lower if self.model else ""
        )
        if not label:
            raise ImproperlyConfigured(
                f"{type(self).__name__} needs a <label> in its URL or a model attribute."
            )
        return ensure_fresh(_viewable_operation(self.request, label, self.kwargs["pk"]))

    def get_template_names(self) -> list[str]:
        """Return the page templates to try, the project's first, then the package's page.

        The model's ``host_template_name``, ``<app_label>/<model_name>_detail.html``, then
        ``<app_label>/<snake_class>.html``, where django-liveops 0.4 looked.
        """
        model = type(self.object)
        meta = model._meta
        names = [
            f"{meta.app_label}/{meta.model_name}_detail.html",
            f"{meta.app_label}/{snake_class_name(model)}.html",
            self.template_name,
        ]
        host = getattr(model, "host_template_name", None)
        if isinstance(host, str) and host:
            names.insert(0, host)
        chosen = getattr(self.object, "get_host_template_name", None)  # a 0.4 model's override
        if callable(chosen):
            names.insert(0, chosen())
        return names

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        """Add what django-liveops 0.4 host templates read: ``base_template``, ``<model_name>``."""
        context = super().get_context_data(**kwargs)
        context["base_template"] = _base_template()
        # Django's own name for the object, which 0.4's page had as it set no other.
        context.setdefault(self.object._meta.model_name, self.object)
        return context


class LiveOperationListView(LoginRequiredMixin, ListView):  # type: ignore[type-arg]
    """The operations of one type the user may view (``viewable_by``), newest first, live.

    The type is the URL's ``label`` (404 for one that names no LiveOperation model), or
    the view's ``model`` in a subclass for one type. Template:
    ``<app_label>/<model_name>_list.html``, else ``liveops/operation_list.html``.
    """

    template_name = "liveops/operation_list.html"
    context_object_name = "operations"
    paginate_by = 25
    operation_model: type[LiveOperation]

    def get_queryset(self) -> Any:
        """Return the user's viewable operations of the view's type, newest first."""
        self.operation_model = self._type()
        return list_queryset(self.operation_model, self.request.user)

    def _type(self) -> type[LiveOperation]:
        if self.model is not None:
            if not issubclass(self.model, LiveOperation):
                raise ImproperlyConfigured(
                    f"{type(self).__name__}.model is {self.model.__name__}, which is not a "
                    "LiveOperation: list a model that subclasses liveops.models.LiveOperation."
                )
            return self.model
        if "label" not in self.kwargs:
            raise ImproperlyConfigured(
                f"{type(self).__name__} needs the type to list: a <label> in its URL pattern, "
                "as in liveops.urls, or a model attribute (model = YourOperation)."
            )
        try:
            return get_operation_model(self.kwargs["label"])
        except LookupError as exc:
            raise Http404("No such operation type.") from exc

    def get_template_names(self) -> list[str]:
        """Prefer ``<app_label>/<model_name>_list.html``, then the package's page."""
        meta = self.operation_model._meta
        return [f"{meta.app_label}/{meta.model_name}_list.html", self.template_name]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        """Add ``title`` and ``base_template``; show the page's lost runs as such."""
        context = super().get_context_data(**kwargs)
        shown = context["object_list"]
        if expire_stale_among(self.operation_model, shown):
            shown = shown.all()  # read again: they are interrupted now
            context["object_list"] = context[self.context_object_name] = shown
            if context.get("page_obj") is not None:
                context["page_obj"].object_list = shown
        context["title"] = capfirst(self.operation_model._meta.verbose_name_plural)
        context["base_template"] = _base_template()
        return context


class LiveOperationCreateMixin:
    """Mix into a ``CreateView``: set the owner, save, enqueue, redirect to the live page.

    Without a template of its own (``<app_label>/<model_name>_form.html``) the form is
    shown on the package's page, ``liveops/operation_form.html``.
    """

    request: HttpRequest
    object: LiveOperation

    def get_template_names(self) -> list[str]:
        """The view's own templates, then the package's form page."""
        names: list[str] = super().get_template_names()  # type: ignore[misc]
        return [*names, "liveops/operation_form.html"]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        """Add ``operation_title``, the model's name for the form page's heading."""
        context: dict[str, Any] = super().get_context_data(**kwargs)  # type: ignore[misc]
        form_meta = getattr(context.get("form"), "_meta", None)
        model = getattr(self, "model", None) or getattr(form_meta, "model", None)
        if model is not None:
            context.setdefault("operation_title", capfirst(model._meta.verbose_name))
        return context

    def form_valid(self, form: Any) -> HttpResponse:
        """Save the operation for the current user and run it once the save commits."""
        with transaction.atomic():
            op = form.save(commit=False)
            op.owner = self.request.user
            op.language = translation.get_language() or ""
            op.save()
            form.save_m2m()
            op.enqueue()
        self.object = op
        return HttpResponseRedirect(self.get_success_url())

    def get_success_url(self) -> str:
        """Return the live page of the new operation."""
        return self.object.get_absolute_url()


class _OperationAction(LoginRequiredMixin, View):
    """POST an action on an operation (CSRF-protected; works without JavaScript).

    A form post is redirected back to the page (``next``, when it is a safe URL, or the
    operation's live page). A request that accepts JSON (``liveops.js``) gets 202, or
    409 when the operation is not in a state the action applies to.
    """

    http_method_names = ["post"]
    #: The model's permission check, e.g. ``"can_cancel"``.
    permission: str
    #: What a form post gets when the action does not apply: a redirect, or this text.
    conflict_text: str | Promise | None = None

    def act(self, op: LiveOperation) -> bool:
        """Do the action; return whether it applied."""
        raise NotImplementedError

    def post(self, request: HttpRequest, label: str, pk: UUID) -> HttpResponse:
        """Check the user, act, and answer the form or the script."""
        op = _viewable_operation(request, label, pk)
        if not getattr(op, self.permission)(request.user):
            return HttpResponseForbidden(_("You may not do this to this operation."))
        applied = self.act(op)
        if request.accepts("application/json") and not request.accepts("text/html"):
            payload = {"applied": applied, "state": op.get_state().value, "attempt": op.attempt}
            return JsonResponse(payload, status=202 if applied else 409)
        if not applied and self.conflict_text is not None:
            return HttpResponse(self.conflict_text, status=409, content_type="text/plain")
        return HttpResponseRedirect(self._next_url(request, op))

    @staticmethod
    def _next_url(request: HttpRequest, op: LiveOperation) -> str:
        wanted = request.POST.get("next", "")
        safe = url_has_allowed_host_and_scheme(
            wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
        return wanted if safe else op.get_absolute_url()


class CancelView(_OperationAction):
    """Ask a running operation to stop; the page then says "Cancelling…".

    One that has ended already keeps its end; a form post just goes back to the page.
    """

    permission = "can_cancel"

    def act(self, op: LiveOperation) -> bool:
        """Request the cancel."""
        return request_cancel(op)


class RetryView(_OperationAction):
    """Start a new attempt of an operation that has ended; 409 while it has not."""

    permission = "can_retry"
    conflict_text = gettext_lazy("This operation has not ended; it can be retried once it has.")

    def act(self, op: LiveOperation) -> bool:
        """Start the new attempt."""
        return request_retry(op)


# --- the names of django-liveops 0.4 (docs/upgrading.md) ---------------------------------


def _warn_renamed(old: str, new: str) -> None:
    """Warn that a 0.4 view is used; stacklevel 3: the caller of the caller."""
    warnings.warn(
        f"liveops.views.{old} is deprecated; use {new}.", DeprecationWarning, stacklevel=3
    )


_CREATE_VIEW_FIX = (
    "LoginRequiredMixin, liveops.views.LiveOperationCreateMixin and "
    "django.views.generic.CreateView, in that order"
)


class CreateLiveOperationView(  # type: ignore[misc]  # the mixin narrows object
    LoginRequiredMixin,
    LiveOperationCreateMixin,
    CreateView,  # type: ignore[type-arg]
):
    """Deprecated: the django-liveops 0.4 name of a login-only create view built on the mixin.

    Subclassing it, or calling ``as_view()`` on it, warns with its replacement.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _warn_renamed("CreateLiveOperationView", _CREATE_VIEW_FIX)

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., HttpResponseBase]:
        """Make the view; warn when it is this class itself (a subclass warned already)."""
        if cls is CreateLiveOperationView:
            _warn_renamed("CreateLiveOperationView", _CREATE_VIEW_FIX)
        return super().as_view(**initkwargs)


class RestartView(RetryView):
    """Deprecated: ``RetryView`` under its django-liveops 0.4 name.

    Subclassing it, or calling ``as_view()`` on it, warns with its replacement.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _warn_renamed("RestartView", "liveops.views.RetryView")

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., HttpResponseBase]:
        """Make the view; warn when it is this class itself (a subclass warned already)."""
        if cls is RestartView:
            _warn_renamed("RestartView", "liveops.views.RetryView")
        return super().as_view(**initkwargs)
