from django.urls import include, path

urlpatterns = [path("operations/", include("liveops.urls"))]
