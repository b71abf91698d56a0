from django.contrib import admin
from django.urls import path

from jobs import views

urlpatterns = [
    path("", views.index, name="index"),
    path("jobs", views.enqueue, name="enqueue"),
    path("jobs/<int:job_id>", views.job_detail, name="job-detail"),
    path("admin/", admin.site.urls),
]
# /healthz is answered by jobs.middleware.HealthCheckMiddleware, before ALLOWED_HOSTS applies.
