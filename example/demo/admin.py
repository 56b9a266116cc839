from django.contrib import admin

from demo.models import Batch, FailingJob, LongImport, QuickCount


@admin.register(QuickCount, LongImport, FailingJob)
class OperationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "created_on", "finished_on", "finished_successfully"]
    list_filter = ["finished_successfully"]
    readonly_fields = ["started_on", "finished_on", "error_message", "traceback", "result_context"]


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "created_on"]
