"""The payout and price pages of the rights-holder portal (HTML; the REST API is in urls.py)."""

from django.urls import path

from royalties import views

urlpatterns = [
    path("holders/<int:holder_id>/payouts/", views.holder_payouts, name="portal-payouts"),
    path("holders/<int:holder_id>/prices/", views.holder_prices, name="portal-prices"),
]
