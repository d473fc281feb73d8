"""Login, logout, sessions, CSRF and origin checks, rate limits, roles and the audit rows they leave."""

from __future__ import annotations

from datetime import timedelta

import pytest

from marketplace import clock, security
from marketplace.middleware import session_cookie_name
from marketplace.tables import AuditEvent

SESSION = session_cookie_name()


async def audit_actions() -> list[str]:
    rows = await AuditEvent.select(AuditEvent.action).order_by(AuditEvent.id)
    return [row["action"] for row in rows]


async def test_login_starts_a_new_session_and_lands_on_the_role_home(client, make_user):
    user = await make_user("steward", name="李管家")
    # Given a browser that already carries a session id of its own (fixation attempt)
    client.set_cookie(SESSION, "attacker-chosen-id")

    response = await client.login(user["phone"], user["password"])

    assert response.status_code == 302
    assert response.headers["location"] == "/"
    new_id = client.cookies.get(SESSION)
    assert new_id and new_id != "attacker-chosen-id"
    set_cookie = response.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=lax" in set_cookie
    home = await client.get("/")
    assert home.status_code == 200
    assert "李管家" in home.text
    assert home.headers["cache-control"] == "no-store"
    assert "login" in await audit_actions()


async def test_each_login_gets_a_different_session_id(make_client, make_user):
    user = await make_user("resident")
    a, b = make_client(), make_client()
    await a.login(user["phone"], user["password"])
    await b.login(user["phone"], user["password"])
    assert a.cookies.get(SESSION) != b.cookies.get(SESSION)


async def test_logging_in_again_ends_the_previous_session_of_that_browser(client, make_user):
    user = await make_user("resident")
    await client.login(user["phone"], user["password"])
    first = client.cookies.get(SESSION)
    await client.login(user["phone"], user["password"])
    second = client.cookies.get(SESSION)
    assert first != second

    client.set_cookie(SESSION, first)
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_logout_ends_the_session_on_the_server(client, make_user):
    user = await make_user("resident")
    await client.login(user["phone"], user["password"])
    stolen = client.cookies.get(SESSION)

    response = await client.post_form("/logout")
    assert response.status_code == 302
    assert response.headers["location"] == "/login"

    # Replaying the old cookie after logout does not work
    client.set_cookie(SESSION, stolen)
    me = await client.get("/api/v1/me")
    assert me.status_code == 401
    assert "logout" in await audit_actions()


async def test_wrong_password_is_refused_with_a_clear_message_and_audited(client, make_user):
    user = await make_user("resident")
    response = await client.login(user["phone"], "not-the-password")
    assert response.status_code == 401
    assert "手机号码或密码不正确" in response.text
    assert client.cookies.get(SESSION) is None
    rows = await AuditEvent.select().where(AuditEvent.action == "login_failed")
    assert len(rows) == 1 and rows[0]["actor_user_id"] == user["id"]
    assert rows[0]["ip"] == "10.0.0.1"


async def test_unknown_phone_is_refused_like_a_wrong_password(client):
    response = await client.login("13900000000", "whatever-password")
    assert response.status_code == 401
    assert "手机号码或密码不正确" in response.text


async def test_empty_login_fields_are_named(client):
    response = await client.post_form(
        "/login", {"phone": "", "password": ""}, headers={"accept-language": "en"}
    )
    assert response.status_code == 422
    assert "Enter your mobile phone number." in response.text
    assert "Enter your password." in response.text
    assert 'aria-invalid="true"' in response.text


async def test_inactive_account_cannot_log_in(client, make_user):
    from marketplace.tables import User

    user = await make_user("resident")
    await User.update({User.is_active: False}).where(User.id == user["id"])
    response = await client.login(user["phone"], user["password"])
    assert response.status_code == 401


async def test_session_ends_after_idle_time(client, make_user):
    clock.freeze(clock.now())
    user = await make_user("resident")
    await client.login(user["phone"], user["password"])
    assert (await client.get("/api/v1/me")).status_code == 200

    clock.advance(timedelta(minutes=29))
    assert (await client.get("/api/v1/me")).status_code == 200  # still active: renews the idle timer
    clock.advance(timedelta(minutes=29))
    assert (await client.get("/api/v1/me")).status_code == 200
    clock.advance(timedelta(minutes=31))
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_session_ends_after_its_absolute_lifetime_even_when_active(client, make_user):
    clock.freeze(clock.now())
    user = await make_user("resident")
    await client.login(user["phone"], user["password"])
    for _ in range(12 * 4 + 1):  # busy every quarter of an hour for over twelve hours
        clock.advance(timedelta(minutes=15))
        response = await client.get("/api/v1/me")
    assert response.status_code == 401


async def test_login_after_next_only_follows_local_paths(client, make_user):
    user = await make_user("resident")
    response = await client.post_form(
        "/login", {"phone": user["phone"], "password": user["password"], "next": "//evil.example/x"}
    )
    assert response.headers["location"] == "/"


# -- CSRF and origin ----------------------------------------------------------------------------


async def test_form_without_csrf_token_is_refused_and_audited(client, make_user):
    user = await make_user("resident")
    await client.get("/login")
    response = await client.post("/login", data={"phone": user["phone"], "password": user["password"]})
    assert response.status_code == 403
    assert "表单已过期或并非来自本站" in response.text
    assert client.cookies.get(SESSION) is None
    assert "csrf_rejected" in await audit_actions()


async def test_form_with_a_forged_csrf_token_is_refused(client, make_user):
    user = await make_user("resident")
    await client.csrf()
    response = await client.post(
        "/login", data={"phone": user["phone"], "password": user["password"], "_csrf_token": "0" * 128}
    )
    assert response.status_code == 403


async def test_logout_needs_csrf_too(logged_in):
    client, _ = await logged_in("resident")
    response = await client.post("/logout")
    assert response.status_code == 403
    assert (await client.get("/api/v1/me")).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"origin": "https://evil.example"}, 403),
        ({"sec-fetch-site": "cross-site"}, 403),
        ({"sec-fetch-site": "same-site"}, 403),
        ({"origin": "http://testserver", "sec-fetch-site": "same-origin"}, 302),
    ],
)
async def test_unsafe_requests_must_come_from_this_site(client, make_user, headers, status):
    user = await make_user("resident")
    response = await client.post_form(
        "/login", {"phone": user["phone"], "password": user["password"]}, headers=headers
    )
    assert response.status_code == status


# -- rate limits -------------------------------------------------------------------------------


async def test_login_attempts_are_rate_limited_per_phone(client, make_user):
    clock.freeze(clock.now().replace(second=1))
    user = await make_user("resident")
    for _ in range(5):
        assert (await client.login(user["phone"], "wrong-password")).status_code == 401
    # The sixth attempt in the minute is refused even with the right password
    response = await client.login(user["phone"], user["password"])
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    assert "尝试次数过多" in response.text

    clock.advance(timedelta(seconds=60))
    assert (await client.login(user["phone"], user["password"])).status_code == 302


async def test_api_is_rate_limited_per_client(app, make_client, make_user, monkeypatch):
    from marketplace import accounts
    from marketplace.settings import get_settings

    monkeypatch.setitem(get_settings().__dict__, "api_rate_limit", 3)
    clock.freeze(clock.now().replace(second=1))
    issued = await accounts.create_api_client("其他部门系统", ["signals:write"])
    c = make_client(authorization=f"Bearer {issued.token}")
    codes = [(await c.get("/api/v1/me")).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    body = (await c.get("/api/v1/me")).json()
    assert body["code"] == "rate_limited"


# -- roles and audit -----------------------------------------------------------------------------


async def test_admin_pages_need_the_admin_role_and_refusals_are_audited(logged_in):
    client, user = await logged_in("resident")
    response = await client.get("/admin/jobs")
    assert response.status_code == 403
    assert "无权" in response.text
    rows = await AuditEvent.select().where(AuditEvent.action == "permission_denied")
    assert len(rows) == 1
    assert rows[0]["actor_user_id"] == user["id"]
    assert rows[0]["target_id"] == "/admin/jobs"


async def test_anonymous_visitors_are_sent_to_login(client):
    response = await client.get("/admin/jobs")
    assert response.status_code == 302
    assert response.headers["location"] == "/login?next=/admin/jobs"


async def test_admin_sees_the_audit_log(logged_in):
    client, _ = await logged_in("admin")
    response = await client.get("/admin/audit?action=login")
    assert response.status_code == 200
    assert "<code>login</code>" in response.text


@pytest.mark.parametrize("role", ["resident", "provider_staff", "volunteer", "steward", "admin"])
async def test_every_role_has_a_home_page(logged_in, role):
    client, _ = await logged_in(role)
    response = await client.get("/")
    assert response.status_code == 200
    assert "退出登录" in response.text


# -- API tokens --------------------------------------------------------------------------------


async def test_api_token_authenticates_and_is_stored_only_as_a_hash(make_client):
    from marketplace import accounts
    from marketplace.tables import ApiClient

    issued = await accounts.create_api_client("医保局数据接口", ["signals:write"])
    row = await ApiClient.select().where(ApiClient.id == issued.client_id).first()
    secret = issued.token.split("_", 2)[2]
    assert secret not in str(row.values())
    assert row["token_hash"] == security.token_digest(secret)

    c = make_client(authorization=f"Bearer {issued.token}")
    response = await c.get("/api/v1/me")
    assert response.status_code == 200
    assert response.json() == {
        "user_id": None,
        "role": None,
        "display_name": "医保局数据接口",
        "client_id": issued.client_id,
        "scopes": ["signals:write"],
    }


async def test_revoked_or_wrong_tokens_are_refused_with_a_problem_body(make_client):
    from marketplace import accounts

    issued = await accounts.create_api_client("client", [])
    await accounts.revoke_api_client(issued.client_id)
    for token in (issued.token, "cm_nothere_abc", "garbage", issued.token[:-2] + "xx"):
        response = await make_client(authorization=f"Bearer {token}").get("/api/v1/me")
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "not_authenticated"


async def test_admin_issues_and_revokes_tokens_in_the_browser(logged_in, make_client):
    admin, _ = await logged_in("admin")
    page = await admin.post_form("/admin/api-clients", {"name": "民政大数据平台", "scopes": "signals:write"})
    assert page.status_code == 200
    token = page.text.split('<code class="token">')[1].split("</code>")[0]
    integration = make_client(authorization=f"Bearer {token}")
    assert (await integration.get("/api/v1/me")).status_code == 200

    from marketplace.tables import ApiClient

    client_id = (await ApiClient.select(ApiClient.id).first())["id"]
    await admin.post_form(f"/admin/api-clients/{client_id}/revoke")
    assert (await integration.get("/api/v1/me")).status_code == 401
    assert {"api_client_created", "api_client_revoked"} <= set(await audit_actions())


async def test_bearer_requests_skip_csrf_but_cookies_do_not(make_client, make_user):
    from marketplace import accounts

    issued = await accounts.create_api_client("client", [])
    c = make_client(authorization=f"Bearer {issued.token}")
    # No CSRF token, yet the request reaches the route (which refuses the method, not the token)
    response = await c.post("/api/v1/me", json={})
    assert response.status_code == 405


async def test_behind_a_proxy_the_client_address_is_the_one_the_proxy_added(client, make_user, monkeypatch):
    from marketplace.settings import get_settings

    monkeypatch.setitem(get_settings().__dict__, "trusted_proxies", True)
    user = await make_user("resident")
    # The client wrote an address of its own in front; the proxy appended the real one.
    await client.login(user["phone"], "wrong-password")
    response = await client.post_form(
        "/login",
        {"phone": user["phone"], "password": "wrong-password"},
        headers={"x-forwarded-for": "1.2.3.4, 203.0.113.7"},
    )
    assert response.status_code == 401
    rows = (
        await AuditEvent.select(AuditEvent.ip)
        .where(AuditEvent.action == "login_failed")
        .order_by(AuditEvent.id)
    )
    assert [r["ip"] for r in rows] == ["10.0.0.1", "203.0.113.7"]
