"""Dashboard routes, included at /admin/dashboard/ before the admin's own URLs."""

from django.urls import path

from recommender.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.index, name="index"),
    path("actions/<slug:action>/", views.enqueue, name="enqueue"),
    path("task/<str:task_id>/", views.task_status, name="task"),
    path("runs/<int:run_id>/<str:name>", views.evaluation_chart, name="chart"),
]
