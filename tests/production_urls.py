"""The project's URLs as production mounts them: without the demo storefront."""

from recsite.urls import urlpatterns as _all

urlpatterns = [pattern for pattern in _all if getattr(pattern, "namespace", None) != "storefront"]
