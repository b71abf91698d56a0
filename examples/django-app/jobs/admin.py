from django.contrib import admin

from .models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "payload", "state", "enqueued_revision", "processed_revision"]
    list_filter = ["state"]
