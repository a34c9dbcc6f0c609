"""API routes under /api/v1/ (a trailing slash is optional everywhere)."""

from django.urls import include, re_path
from rest_framework.routers import SimpleRouter

from recommender.api import views

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("items", views.ItemViewSet, basename="item")
router.register("users", views.UserViewSet, basename="user")
router.register("behaviours", views.BehaviourViewSet, basename="behaviour")

urlpatterns = [
    re_path(r"^health/?$", views.HealthView.as_view(), name="health"),
    re_path(r"^health/detail/?$", views.HealthDetailView.as_view(), name="health-detail"),
    re_path(r"^tokens/?$", views.TokenView.as_view(), name="tokens"),
    re_path(
        r"^metrics/scenarios/?$", views.ScenarioMetricsView.as_view(), name="metrics-scenarios"
    ),
    re_path(r"^metrics/variants/?$", views.VariantMetricsView.as_view(), name="metrics-variants"),
    re_path(r"^metrics/sources/?$", views.SourceMetricsView.as_view(), name="metrics-sources"),
    re_path(
        r"^metrics/positions/?$", views.PositionMetricsView.as_view(), name="metrics-positions"
    ),
    re_path(r"^metrics/coverage/?$", views.CoverageMetricsView.as_view(), name="metrics-coverage"),
    re_path(
        r"^metrics/experiments/(?P<name>[^/]+)/?$",
        views.ExperimentMetricsView.as_view(),
        name="metrics-experiment",
    ),
    re_path(r"^search/?$", views.SearchView.as_view(), name="search"),
    re_path(
        r"^recommendations/?$",
        views.SessionRecommendationView.as_view(),
        name="recommendations",
    ),
    re_path(r"^", include(router.urls)),
]
