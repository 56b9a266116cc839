"""URLs: ``path("operations/", include("liveops.urls"))``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.urls import path

from liveops.views import CancelView, LiveOperationListView, LiveOperationView, RetryView

app_name = "liveops"


def _from_op_type(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Serve ``view`` under django-liveops 0.4's argument name: its ``op_type`` is our label."""

    def renamed(request: HttpRequest, op_type: str, **kwargs: Any) -> HttpResponseBase:
        return view(request, label=op_type, **kwargs)

    return renamed


urlpatterns = [
    path("<str:label>/", LiveOperationListView.as_view(), name="list"),
    path("<str:label>/<uuid:pk>/", LiveOperationView.as_view(), name="operation"),
    path("<str:label>/<uuid:pk>/cancel/", CancelView.as_view(), name="cancel"),
    path("<str:label>/<uuid:pk>/retry/", RetryView.as_view(), name="retry"),
    # django-liveops 0.4's names, so its {% url 'liveops:live' op_type=… pk=… %} still works.
    path("<str:op_type>/<uuid:pk>/", _from_op_type(LiveOperationView.as_view()), name="live"),
    path(
        "<str:op_type>/<uuid:pk>/restart/",
        _from_op_type(RetryView.as_view()),
        name="restart",
    ),
]
