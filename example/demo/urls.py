from django.urls import path

from demo import views

urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("start/quick-count/", views.start_quick_count, name="start-quick-count"),
    path("start/long-import/", views.start_long_import, name="start-long-import"),
    path("start/failing-job/", views.start_failing_job, name="start-failing-job"),
    path("start/sales-report/", views.start_sales_report, name="start-sales-report"),
    path("start/several/", views.StartBatchView.as_view(), name="start-batch"),
    path("several/<int:pk>/", views.BatchView.as_view(), name="batch"),
]
