"""Top-level URLs: the admin (with its dashboard), the API and its docs, the demo storefront."""

from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerView

from recommender import monitoring
from recommender.api.schema import CachedSchemaView

urlpatterns = [
    # Before admin.site.urls, whose catch-all would otherwise take /admin/dashboard/.
    path("admin/dashboard/", include("recommender.dashboard.urls")),
    # set_language: the admin header's language switcher stores the choice in a cookie.
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("recommender.api.urls")),
    path("api/schema/", CachedSchemaView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    # Prometheus; 404 unless RECOMMENDER_METRICS_ENABLED (docs/operations.md).
    path("metrics", monitoring.metrics_view, name="metrics"),
]
# The demo storefront: with DEBUG on (make demo) or RECSITE_STOREFRONT=1 only. It hands
# out shopper tokens for any demo shopper, which a real shop's backend would not do.
if settings.RECSITE_STOREFRONT:
    urlpatterns.append(path("", include("recommender.demo.storefront.urls")))

# Serves the admin's static files when DEBUG is on (the demo); production uses collectstatic.
urlpatterns += staticfiles_urlpatterns()
