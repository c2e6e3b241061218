from django.urls import path

from attribution import api

urlpatterns = [
    path("records/", api.RecordListApi.as_view(), name="records"),
    path("records/<int:sequence>/", api.RecordDetailApi.as_view(), name="record"),
    path("verify/", api.ChainVerifyApi.as_view(), name="verify"),
    path(
        "training/<uuid:generation>/",
        api.TrainingAttributionApi.as_view(),
        name="training-attribution",
    ),
]
