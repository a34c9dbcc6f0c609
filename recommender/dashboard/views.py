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

from recommender.dashboard import queries
from recommender.models import EvaluationRun


@staff_member_required
@require_GET
def index(request):
    """Counts, activity, coverage, queues, the latest evaluation and the top items."""
    context = {
        **admin.site.each_context(request),
        "title": _("Recommender dashboard"),
        "counts": queries.counts(),
        "activity": queries.activity(),
        "spaces": queries.space_coverage(),
        "queues": queries.queue_depths(),
        "heartbeat": queries.last_heartbeat(),
        "evaluation": queries.latest_evaluation(),
        "top_items": queries.top_items(),
        "actions": queries.ACTIONS,
        "online": queries.online(),
    }
    return TemplateResponse(request, "admin/recommender/dashboard.html", context)


@staff_member_required
@require_POST
def enqueue(request, action: str):
    """Queue the task behind a button; JSON for the page's script, a redirect without it."""
    if action not in queries.ACTIONS:
        raise Http404(f"no dashboard action {action!r}")
    wants_json = "application/json" in request.headers.get("Accept", "")
    try:
        task_id = queries.enqueue(action)
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
    state = queries.task_state(task_id)
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
    path = queries.chart_path(run, name)
    if path is None:
        raise Http404("no such chart")
    return FileResponse(path.open("rb"), content_type="image/png")
