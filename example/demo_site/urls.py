"""URLs of the demo: its own pages, the login, the admin and the package's live page."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("", include("demo.urls")),
    # The live page of every operation: /operations/<app_label>.<model_name>/<pk>/.
    path("operations/", include("liveops.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),  # set_language, for the header's picker
]
