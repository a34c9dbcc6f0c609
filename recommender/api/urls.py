"""API routes under /api/v1/."""

from django.urls import path

from recommender.api import views

urlpatterns = [
    path("health", views.HealthView.as_view(), name="health"),
]
