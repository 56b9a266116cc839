"""URLs: ``path("operations/", include("liveops.urls"))``."""

from __future__ import annotations

from django.urls import path

from liveops.views import CancelView, LiveOperationListView, LiveOperationView, RetryView

app_name = "liveops"

urlpatterns = [
    path("<str:label>/", LiveOperationListView.as_view(), name="list"),
    path("<str:label>/<uuid:pk>/", LiveOperationView.as_view(), name="operation"),
    path("<str:label>/<uuid:pk>/cancel/", CancelView.as_view(), name="cancel"),
    path("<str:label>/<uuid:pk>/retry/", RetryView.as_view(), name="retry"),
]
