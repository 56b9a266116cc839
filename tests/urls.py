from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from liveops.models import get_operation_model


@csrf_exempt
def enqueue(request: HttpRequest, label: str, pk: str) -> HttpResponse:
    """Enqueue an operation inside this server process (test servers only)."""
    with transaction.atomic():
        get_operation_model(label)._default_manager.get(pk=pk).enqueue()
    return HttpResponse("queued")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("operations/", include("liveops.urls")),
    path("test/enqueue/<str:label>/<str:pk>/", enqueue),
]
