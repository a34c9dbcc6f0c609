"""Top-level URLs: the storefront, the admin (with its dashboard), the API and its docs."""

from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    # Before admin.site.urls, whose catch-all would otherwise take /admin/dashboard/.
    path("admin/dashboard/", include("recommender.dashboard_urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("recommender.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("", include("recommender.storefront_urls")),
]

# Serves the admin's static files when DEBUG is on (the demo); production uses collectstatic.
urlpatterns += staticfiles_urlpatterns()
