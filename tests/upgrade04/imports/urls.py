from django.urls import path

from . import views

urlpatterns = [
    path("new/", views.ImportCreateView.as_view(), name="import-create"),
]
