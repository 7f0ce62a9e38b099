import datetime

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from cdp.api.errors import ApplicationError
from cdp.api.models import ApiToken
from cdp.api.permissions import HasScope
from cdp.api.services import api_token_create, api_token_revoke
from cdp.audit.models import AuditEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return APIClient()


def bearer(token):
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_token_is_stored_only_as_a_hash():
    api_token, token = api_token_create(name="crm", scopes=["consent:read"], actor="system")
    stored = ApiToken.objects.get(pk=api_token.pk)
    assert token.startswith(f"cdp_{stored.prefix}_")
    assert token.encode() not in bytes(stored.token_hash)
    assert len(bytes(stored.token_hash)) == 32
    assert AuditEntry.objects.filter(
        action="api.token_create", object_id=str(api_token.pk)
    ).exists()


def test_whoami_with_a_valid_token(api):
    _, token = api_token_create(name="crm", scopes=["consent:read"], actor="system")
    response = api.get("/api/v1/whoami", **bearer(token))
    assert response.status_code == 200
    assert response.json()["name"] == "crm"
    assert response.json()["scopes"] == ["consent:read"]


def test_anonymous_call_gets_401_in_the_error_shape(api):
    response = api.get("/api/v1/whoami")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: None, "unknown token"),
        (lambda t: ApiToken.objects.filter(pk=t.pk).update(revoked_at=timezone.now()), "revoked"),
        (
            lambda t: ApiToken.objects.filter(pk=t.pk).update(
                expires_at=timezone.now() - datetime.timedelta(seconds=1)
            ),
            "expired",
        ),
    ],
    ids=["wrong", "revoked", "expired"],
)
def test_unusable_tokens_are_refused(api, mutate, message):
    api_token, token = api_token_create(name="crm", scopes=["consent:read"], actor="system")
    mutate(api_token)
    if message == "unknown token":
        token = token[:-2] + "xx"
    response = api.get("/api/v1/whoami", **bearer(token))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert message in response.json()["error"]["message"]


def test_unknown_scope_is_refused():
    with pytest.raises(ApplicationError) as excinfo:
        api_token_create(name="crm", scopes=["everything"], actor="system")
    assert excinfo.value.code == "api_scope_unknown"
    assert ApiToken.objects.count() == 0


class ScopedView(APIView):
    permission_classes = [HasScope("consent:write", perm="profiles.view_customer")]

    def get(self, request):
        return Response({"ok": True})


def test_scope_gates_tokens_and_permission_gates_users(django_user_model):
    view = ScopedView.as_view()
    factory = APIRequestFactory()
    _, reader = api_token_create(name="r", scopes=["consent:read"], actor="system")
    _, writer = api_token_create(name="w", scopes=["consent:write"], actor="system")

    assert view(factory.get("/", **bearer(reader))).status_code == 403
    assert view(factory.get("/", **bearer(writer))).status_code == 200

    from django.contrib.auth.models import Permission
    from rest_framework.test import force_authenticate

    staff = django_user_model.objects.create_user("staff", password="x" * 16)
    request = factory.get("/")
    force_authenticate(request, user=staff)
    assert view(request).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_customer"))
    staff = django_user_model.objects.get(pk=staff.pk)
    request = factory.get("/")
    force_authenticate(request, user=staff)
    assert view(request).status_code == 200


def test_create_and_revoke_commands(capsys, api):
    call_command("create_api_token", name="crm", scopes="consent:read", days=7)
    token = capsys.readouterr().out.strip()
    assert api.get("/api/v1/whoami", **bearer(token)).status_code == 200
    prefix = token.split("_")[1]
    call_command("revoke_api_token", prefix)
    assert api.get("/api/v1/whoami", **bearer(token)).status_code == 401
    with pytest.raises(CommandError, match="no API token"):
        call_command("revoke_api_token", "nope")


def test_revocation_is_audited():
    api_token, _ = api_token_create(name="crm", scopes=["consent:read"], actor="system")
    api_token_revoke(api_token=api_token, actor="user:1")
    assert AuditEntry.objects.filter(action="api.token_revoke", actor="user:1").count() == 1
