"""The operators' dashboard under /admin/dashboard/ (staff only); queries live in ``dashboard``."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from kombu.exceptions import OperationalError

from recommender import dashboard
from recommender.models import EvaluationRun


@staff_member_required
@require_GET
def index(request):
    """Counts, activity, coverage, queues, the latest evaluation and the top items."""
    context = {
        **admin.site.each_context(request),
        "title": _("Recommender dashboard"),
        "counts": dashboard.counts(),
        "activity": dashboard.activity(),
        "spaces": dashboard.space_coverage(),
        "queues": dashboard.queue_depths(),
        "heartbeat": dashboard.last_heartbeat(),
        "evaluation": dashboard.latest_evaluation(),
        "top_items": dashboard.top_items(),
        "actions": dashboard.ACTIONS,
    }
    return TemplateResponse(request, "admin/recommender/dashboard.html", context)


@staff_member_required
@require_POST
def enqueue(request, action: str):
    """Queue the task behind a button; JSON for the page's script, a redirect without it."""
    if action not in dashboard.ACTIONS:
        raise Http404(f"no dashboard action {action!r}")
    wants_json = "application/json" in request.headers.get("Accept", "")
    try:
        task_id = dashboard.enqueue(action)
    except OperationalError as exc:
        error = _(
            "The broker did not answer (%(error)s): start it with `manage.py services start`."
        ) % {"error": exc}
        if wants_json:
            return JsonResponse({"action": action, "error": error}, status=503)
        messages.error(request, error)
        return redirect("dashboard:index")
    if wants_json:
        return JsonResponse({"action": action, "task": task_id}, status=202)
    messages.info(
        request, _("Queued %(action)s as task %(task)s.") % {"action": action, "task": task_id}
    )
    return redirect("dashboard:index")


@staff_member_required
@require_GET
def task_status(request, task_id: str):
    """The Celery state of a queued task, polled by the dashboard page."""
    state = dashboard.task_state(task_id)
    return JsonResponse(
        {
            "task": state.id,
            "state": state.state,
            "ready": state.ready,
            "result": state.result,
            "error": state.error,
        },
        json_dumps_params={"ensure_ascii": False},
    )


@staff_member_required
@require_GET
def evaluation_chart(request, run_id: int, name: str):
    """A PNG chart of an evaluation run, read only from that run's report folder."""
    run = get_object_or_404(EvaluationRun, pk=run_id)
    path = dashboard.chart_path(run, name)
    if path is None:
        raise Http404("no such chart")
    return FileResponse(path.open("rb"), content_type="image/png")
