"""Staff-only endpoints share one permission class: a signed-in non-staff user gets the
platform's `forbidden` error with the endpoint's reason, an anonymous one is refused, staff
pass."""

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

STAFF_ONLY = [
    ("get", "/api/attribution/verify/", "only staff can verify the attribution log"),
    ("get", "/api/attribution/disputes/verify/", "only staff can verify the dispute chain"),
    ("get", "/api/royalties/ledger/check/", "only staff can run the ledger check"),
    ("post", "/api/royalties/transactions/1/reverse/", "only staff can reverse ledger postings"),
]


@pytest.mark.parametrize(("method", "url", "reason"), STAFF_ONLY)
def test_staff_only_endpoints(make_user, method, url, reason):
    client = APIClient()
    assert getattr(client, method)(url, {"reason": "x"}, format="json").status_code in (401, 403)
    client.force_authenticate(make_user())
    response = getattr(client, method)(url, {"reason": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == {"code": "forbidden", "message": reason, "details": {}}
    client.force_authenticate(make_user(staff=True))
    response = getattr(client, method)(url, {"reason": "x"}, format="json")
    assert response.status_code in (200, 404)  # 404: no transaction 1 to reverse
