"""The demo's pages: home, starting operations, and a page watching several at once."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils import translation
from django.views.generic import CreateView, DetailView, FormView, TemplateView

from demo.forms import (
    BatchForm,
    FailingJobForm,
    LongImportForm,
    QuickCountForm,
    SalesReportForm,
)
from demo.models import OPERATION_TYPES, Batch, FailingJob, LongImport
from liveops.lists import list_queryset
from liveops.views import LiveOperationCreateMixin

#: How many long imports the home page's live list shows per page.
RECENT = 10


class HomeView(LoginRequiredMixin, TemplateView):
    """Explain each operation type, offer a start button for each, list imports live."""

    template_name = "demo/home.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        imports = Paginator(list_queryset(LongImport, self.request.user), RECENT)
        # Several forms share a page (and field names): give each its own ids.
        context.update(
            quick_count_form=QuickCountForm(auto_id="quick-count-%s"),
            long_import_form=LongImportForm(auto_id="long-import-%s"),
            failing_job_form=FailingJobForm(auto_id="failing-job-%s"),
            sales_report_form=SalesReportForm(auto_id="sales-report-%s"),
            batch_form=BatchForm(auto_id="several-%s"),
            imports=imports.get_page(self.request.GET.get("page")),
            operation_types=[(model._meta.verbose_name_plural, model) for model in OPERATION_TYPES],
        )
        return context


class StartOperationView(LoginRequiredMixin, LiveOperationCreateMixin, CreateView):
    """Create the operation from the posted form, run it, and go to its live page."""

    template_name = "demo/start_form.html"


class StartBatchView(LoginRequiredMixin, FormView):
    """Start three operations at once and go to the page that watches all of them."""

    form_class = BatchForm
    template_name = "demo/start_form.html"

    def form_valid(self, form: BatchForm) -> HttpResponse:
        seconds = form.cleaned_data["seconds"]
        operations = [
            LongImport(seconds=seconds),
            LongImport(seconds=max(0.5, seconds * 0.7), stream=True),
            FailingJob(seconds=max(0.5, seconds * 0.4)),
        ]
        with transaction.atomic():
            for op in operations:
                op.owner = self.request.user
                op.language = translation.get_language() or ""
                op.save()
                op.enqueue()  # runs once this transaction commits
            batch = Batch.objects.create(
                owner=self.request.user,
                long_import=operations[0],
                stream_import=operations[1],
                failing_job=operations[2],
            )
        return redirect(batch)


class BatchView(LoginRequiredMixin, DetailView):
    """Watch the three operations of a batch; one WebSocket carries all of them."""

    template_name = "demo/batch.html"
    context_object_name = "batch"

    def get_queryset(self) -> QuerySet[Batch]:
        return Batch.objects.filter(owner=self.request.user).select_related(
            "long_import", "stream_import", "failing_job"
        )


start_quick_count = StartOperationView.as_view(form_class=QuickCountForm)
start_long_import = StartOperationView.as_view(form_class=LongImportForm)
start_failing_job = StartOperationView.as_view(form_class=FailingJobForm)
start_sales_report = StartOperationView.as_view(form_class=SalesReportForm)
