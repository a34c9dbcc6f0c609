"""Storefront routes: the shop at / (and /shop/) and item pages."""

from django.urls import path

from recommender import storefront

app_name = "storefront"

urlpatterns = [
    path("", storefront.shop, name="shop"),
    path("shop/", storefront.shop, name="shop-alias"),
    path("item/<str:external_id>/", storefront.item_page, name="item"),
    path("shop/shoppers", storefront.shoppers, name="shoppers"),
    path("shop/shoppers/new", storefront.new_shopper, name="new-shopper"),
    path("shop/token", storefront.shopper_token, name="token"),
]
