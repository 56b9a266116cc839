"""URLs as a 0.4 project has them: its app, then liveops' own under live/."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("imports/", include("imports.urls")),
    path("live/", include("liveops.urls")),
]
