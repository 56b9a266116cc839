"""URLs: ``path("operations/", include("liveops.urls"))``."""

from __future__ import annotations

from django.urls import path

from liveops.views import CancelView, LiveOperationView

app_name = "liveops"

urlpatterns = [
    path("<str:label>/<uuid:pk>/", LiveOperationView.as_view(), name="operation"),
    path("<str:label>/<uuid:pk>/cancel/", CancelView.as_view(), name="cancel"),
]
