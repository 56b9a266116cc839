from django.contrib import admin

from demo.models import Batch, FailingJob, LongImport, QuickCount, SalesReport, SendReport
from liveops.admin import LiveOperationAdmin

admin.site.register(
    [QuickCount, LongImport, FailingJob, SalesReport, SendReport], LiveOperationAdmin
)


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "created_on"]
