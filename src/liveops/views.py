"""The live page of an operation, and a mixin for views that start one."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import translation
from django.views.generic import DetailView

from liveops.liveness import ensure_fresh
from liveops.models import LiveOperation, get_operation_model

__all__ = ["LiveOperationCreateMixin", "LiveOperationView"]


class LiveOperationView(LoginRequiredMixin, DetailView):  # type: ignore[type-arg]
    """Show one operation live; 404 for anyone its ``can_view()`` refuses."""

    template_name = "liveops/operation_detail.html"
    context_object_name = "operation"

    def get_object(self, queryset: Any = None) -> LiveOperation:
        """Return the operation named by the URL, if the user may watch it."""
        try:
            model = get_operation_model(self.kwargs["label"])
        except LookupError as exc:
            raise Http404("No such operation type.") from exc
        op = model._default_manager.filter(pk=self.kwargs["pk"]).first()
        if op is None or not op.can_view(self.request.user):
            raise Http404("No such operation.")
        return ensure_fresh(op)

    def get_template_names(self) -> list[str]:
        """Prefer ``<app_label>/<model_name>_detail.html``, then the package's page."""
        meta = self.object._meta
        return [f"{meta.app_label}/{meta.model_name}_detail.html", self.template_name]


class LiveOperationCreateMixin:
    """Mix into a ``CreateView``: set the owner, save, enqueue, redirect to the live page."""

    request: HttpRequest
    object: LiveOperation

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
