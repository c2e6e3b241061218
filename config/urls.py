from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token

from attribution import views as attribution_views
from config.views import home
from royalties.quote_api import GenerationQuoteApi

urlpatterns = [
    path("", home, name="home"),
    # machine-readable consent signals (TDMRep), public like robots.txt
    path(".well-known/", include("catalog.well_known")),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    # people's pages (HTML): the rights-holder portal and the song-selection studio
    path("portal/", include("catalog.page_urls")),
    path("portal/", include("royalties.page_urls")),
    path("studio/", include("generation.page_urls")),
    path("", include("disputes.page_urls")),  # the portal's, the studio's and staff's
    # staff pages (HTML)
    path("attribution/reports/", attribution_views.tda_report_list, name="tda-reports"),
    path(
        "attribution/reports/<str:report>/<str:filename>",
        attribution_views.tda_report_download,
        name="tda-report-file",
    ),
    path(
        "attribution/audits/", attribution_views.similarity_audit_report, name="similarity-audits"
    ),
    path("attribution/hubs/", attribution_views.tda_hub_report, name="tda-hubs"),
    path("attribution/unlearning/", attribution_views.unlearning_report, name="unlearning"),
    path("api/auth/token/", obtain_auth_token, name="api-token"),
    path("api/catalogue/", include("catalog.urls")),
    path("api/retrieval/", include("catalog.retrieval.urls")),
    path("api/royalties/", include(("royalties.urls", "royalties"))),
    # the quote is royalties' (prices, floors, split) at the generations' address
    path("api/generations/quote/", GenerationQuoteApi.as_view(), name="generation-quote"),
    path("api/generations/", include(("generation.urls", "generation"))),
    path("api/attribution/disputes/", include(("disputes.urls", "disputes"))),
    path("api/attribution/", include(("attribution.urls", "attribution"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]

handler500 = "config.views.server_error"
