from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from . import queue
from .models import Job
from .revision import REVISION


@require_GET
def index(request):
    return render(
        request,
        "jobs/index.html",
        {
            "revision": REVISION,
            "jobs_total": Job.objects.count(),
            "jobs_done": Job.objects.filter(state=Job.DONE).count(),
            "recent": Job.objects.order_by("-id")[:5],
        },
    )


# An API for the example and its tests (`curl -d payload=... :8000/jobs`): no CSRF token. A real
# app would authenticate it.
@csrf_exempt
@require_POST
def enqueue(request):
    payload = request.POST.get("payload", "").strip()
    if not payload:
        return JsonResponse({"error": "`payload` is required"}, status=400)
    if len(payload) > Job._meta.get_field("payload").max_length:
        return JsonResponse({"error": "`payload` is longer than 200 characters"}, status=400)
    job = queue.enqueue(payload)
    return JsonResponse(job.as_dict(), status=201)


@require_GET
def job_detail(request, job_id):
    return JsonResponse(get_object_or_404(Job, pk=job_id).as_dict())
