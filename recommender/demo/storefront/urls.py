"""Storefront routes: the shop at / (and /shop/) and item pages."""

from django.urls import path

from recommender.demo.storefront import views

app_name = "storefront"

urlpatterns = [
    path("", views.shop, name="shop"),
    path("shop/", views.shop, name="shop-alias"),
    path("item/<str:external_id>/", views.item_page, name="item"),
    path("shop/shoppers", views.shoppers, name="shoppers"),
    path("shop/shoppers/new", views.new_shopper, name="new-shopper"),
    path("shop/token", views.shopper_token, name="token"),
]
