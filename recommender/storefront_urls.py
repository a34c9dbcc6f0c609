"""Storefront routes: the shop at / (and /shop/) and item pages."""

from django.urls import path

from recommender import storefront

app_name = "storefront"

urlpatterns = [
    path("", storefront.shop, name="shop"),
    path("shop/", storefront.shop, name="shop-alias"),
    path("item/<str:external_id>/", storefront.item_page, name="item"),
]
