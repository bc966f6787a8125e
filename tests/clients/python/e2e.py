"""End-to-end test of TestIO Hub through the Python client that openapi-python-client generates from openapi.json.

It talks to a running stack (API, worker, and the TestIO simulator with the demo account) as a client programmer
would: only through the generated functions and models, checking typed results and typed errors. Run by
./scripts/contract, which generates the client, starts the stack and sets the environment:

    TESTIO_HUB_URL      the API, e.g. http://127.0.0.1:18290
    TESTIO_SIM_URL      the simulator's Customer API base URL, e.g. http://127.0.0.1:18291/customer/v2/
    TESTIO_SIM_TOKEN    a token the simulator accepts
    MAIL_OUTBOX_DIR     the API's mail outbox (verification links are read from it)
"""

import os
import pathlib
import re
import sys
import time
import uuid

from testio_hub_client import AuthenticatedClient, Client
from testio_hub_client.api.api_keys import create_api_key
from testio_hub_client.api.auth import login, refresh, register, verify_email
from testio_hub_client.api.invitations import accept_invitation, create_invitation
from testio_hub_client.api.me import get_me
from testio_hub_client.api.members import list_members, update_member
from testio_hub_client.api.tenants import create_tenant, get_tenant
from testio_hub_client.api.testio import get_sync_run, request_sync_run, save_connection
from testio_hub_client.models import (
    AcceptInvitationRequest,
    AuthResponse,
    ConnectionStatus,
    ConnectionView,
    CreateApiKeyRequest,
    CreatedApiKey,
    CreatedInvitation,
    CreateInvitationRequest,
    CreateTenantRequest,
    EmailVerified,
    ErrorCode,
    LoginRequest,
    MembershipView,
    MeResponse,
    ProblemDetails,
    RefreshRequest,
    RegisterRequest,
    RequestSyncRun,
    Role,
    SaveConnectionRequest,
    SyncRunView,
    SyncStatus,
    TenantView,
    TokenPair,
    UpdateMemberRequest,
    VerifyEmailRequest,
)

BASE = os.environ["TESTIO_HUB_URL"]
OUTBOX = pathlib.Path(os.environ["MAIL_OUTBOX_DIR"])
RUN = uuid.uuid4().hex[:8]
PASSWORD = "correct horse battery staple"


def expect(value, kind, what):
    if not isinstance(value, kind):
        sys.exit(f"FAIL {what}: expected {kind.__name__}, got {value!r}")
    return value


def verification_token(email: str) -> str:
    """The token of the newest verification link mailed to `email` (an .eml file in the outbox)."""
    for _ in range(50):
        newest = None
        for path in OUTBOX.glob("*.eml"):
            text = path.read_text()
            # Quoted-printable soft line breaks split long lines.
            text = text.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=")
            if f"To: {email}" in text and "verify-email?token=" in text:
                if newest is None or path.stat().st_mtime > newest[0]:
                    newest = (path.stat().st_mtime, re.search(r"verify-email\?token=(ev_[A-Za-z0-9_-]+)", text)[1])
        if newest:
            return newest[1]
        time.sleep(0.1)
    sys.exit(f"FAIL no verification mail to {email} in {OUTBOX}")


def sign_up(anonymous: Client, name: str) -> tuple[AuthenticatedClient, AuthResponse]:
    email = f"{name}-{RUN}@example.com"
    created = register.sync(client=anonymous, body=RegisterRequest(email=email, name=name.title(), password=PASSWORD))
    created = expect(created, AuthResponse, f"register {name}")
    assert created.user.email == email and created.user.email_verified is False
    verified = verify_email.sync(client=anonymous, body=VerifyEmailRequest(token=verification_token(email)))
    assert expect(verified, EmailVerified, "verify email").email == email
    return AuthenticatedClient(base_url=BASE, token=created.tokens.access_token), created


def main() -> None:
    anonymous = Client(base_url=BASE)

    # Accounts: register (verified through the mailed link), log in, refresh; a wrong password is a typed 401.
    owner, owner_signup = sign_up(anonymous, "owner")
    signed_in = expect(
        login.sync(client=anonymous, body=LoginRequest(email=owner_signup.user.email, password=PASSWORD)),
        AuthResponse,
        "login",
    )
    pair = expect(
        refresh.sync(client=anonymous, body=RefreshRequest(refresh_token=signed_in.tokens.refresh_token)),
        TokenPair,
        "refresh",
    )
    assert pair.token_type == "Bearer" and pair.expires_in > 0
    wrong = login.sync_detailed(client=anonymous, body=LoginRequest(email=owner_signup.user.email, password="nope nope"))
    assert wrong.status_code == 401, wrong.status_code
    assert expect(wrong.parsed, ProblemDetails, "wrong password").code == ErrorCode.UNAUTHENTICATED
    me = expect(get_me.sync(client=owner), MeResponse, "me")
    assert me.user.email_verified is True and me.memberships == []

    # A tenant, an invitation accepted by a verified user, and a role change.
    tenant = expect(
        create_tenant.sync(client=owner, body=CreateTenantRequest(name="Contract QA", slug=f"contract-{RUN}")),
        TenantView,
        "create tenant",
    )
    member, member_signup = sign_up(anonymous, "member")
    invitation = expect(
        create_invitation.sync(
            tenant.id, client=owner, body=CreateInvitationRequest(email=member_signup.user.email, role=Role.VIEWER)
        ),
        CreatedInvitation,
        "invite",
    )
    joined = expect(
        accept_invitation.sync(client=member, body=AcceptInvitationRequest(token=invitation.token)),
        MembershipView,
        "accept",
    )
    assert joined.role == Role.VIEWER and joined.tenant.id == tenant.id
    promoted = update_member.sync(
        tenant.id, member_signup.user.id, client=owner, body=UpdateMemberRequest(role=Role.MEMBER)
    )
    assert promoted.role == Role.MEMBER, promoted
    members = list_members.sync(tenant.id, client=owner)
    assert sorted(m.role for m in members) == [Role.MEMBER, Role.OWNER], members

    # An API key, used as a bearer token; a stranger's view of the tenant is a typed 404.
    key = expect(
        create_api_key.sync(tenant.id, client=owner, body=CreateApiKeyRequest(name="contract", role=Role.ADMIN)),
        CreatedApiKey,
        "create key",
    )
    assert key.secret.startswith(key.api_key.prefix)
    as_key = AuthenticatedClient(base_url=BASE, token=key.secret)
    assert expect(get_tenant.sync(tenant.id, client=as_key), TenantView, "tenant by key").slug == f"contract-{RUN}"
    stranger, _ = sign_up(anonymous, "stranger")
    hidden = get_tenant.sync_detailed(tenant.id, client=stranger)
    assert hidden.status_code == 404 and expect(hidden.parsed, ProblemDetails, "stranger").code == ErrorCode.NOT_FOUND

    # TestIO: connect the simulator, sync, and poll the run until it ends.
    connection = expect(
        save_connection.sync(
            tenant.id,
            client=owner,
            body=SaveConnectionRequest(token=os.environ["TESTIO_SIM_TOKEN"], base_url=os.environ["TESTIO_SIM_URL"]),
        ),
        ConnectionView,
        "connect",
    )
    assert connection.status == ConnectionStatus.ACTIVE and connection.token_last4
    run = expect(request_sync_run.sync(tenant.id, client=as_key, body=RequestSyncRun(full=True)), SyncRunView, "sync")
    deadline = time.monotonic() + 120
    while run.status in (SyncStatus.QUEUED, SyncStatus.RUNNING):
        if time.monotonic() > deadline:
            sys.exit(f"FAIL the sync run is still {run.status} after 120 s")
        time.sleep(0.5)
        run = expect(get_sync_run.sync(tenant.id, run.id, client=owner), SyncRunView, "poll run")
    assert run.status == SyncStatus.SUCCEEDED, run
    assert run.tests.new > 0 and run.requests > 0, run

    print(f"e2e through the generated Python client: ok (tenant {tenant.id}, run {run.id}, {run.tests.new} tests)")


if __name__ == "__main__":
    main()
