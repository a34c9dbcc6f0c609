"""The demo shop: a deterministic bilingual (zh/en) catalogue, users and behaviours
(``catalogue``, data tables in ``tables/``), its loader (``load``), and the storefront
that calls the API from the browser (``storefront/``)."""
