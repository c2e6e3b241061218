from django.urls import path

from royalties import api, quote_api

urlpatterns = [
    path("holders/<int:holder_id>/payouts/", api.PayoutSummaryApi.as_view(), name="payouts"),
    path(
        "holders/<int:holder_id>/payouts/recordings/",
        api.PayoutByRecordingApi.as_view(),
        name="payouts-by-recording",
    ),
    path(
        "holders/<int:holder_id>/payouts/generations/",
        api.PayoutByGenerationApi.as_view(),
        name="payouts-by-generation",
    ),
    path("holders/<int:holder_id>/payouts.csv", api.PayoutCsvApi.as_view(), name="payouts-csv"),
    path(
        "holders/<int:holder_id>/statements/<str:period>/close/",
        api.StatementCloseApi.as_view(),
        name="statement-close",
    ),
    path("holders/<int:holder_id>/floors/", quote_api.PriceFloorApi.as_view(), name="price-floors"),
    path("price-lists/", api.PriceListApi.as_view(), name="price-lists"),
    path("split-policies/", api.SplitPolicyApi.as_view(), name="split-policies"),
    path(
        "transactions/<int:transaction_id>/reverse/",
        api.TransactionReverseApi.as_view(),
        name="transaction-reverse",
    ),
    path("ledger/check/", api.LedgerCheckApi.as_view(), name="ledger-check"),
]
