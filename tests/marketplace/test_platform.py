"""Platform details: migrations, structured logs without personal data, HTTPS cookie flags."""

from __future__ import annotations

import logging

from piccolo.conf.apps import Finder

from marketplace import db
from marketplace.logs import LogfmtFormatter


async def test_migrations_are_all_applied_and_create_every_table():
    assert await db.pending_migrations() == []
    for table in Finder().get_table_classes():
        assert await table.table_exists(), table._meta.tablename


async def test_migrating_again_changes_nothing():
    lines = await db.migrate()
    assert any("No migrations need to be run" in line for line in lines)


async def test_one_log_line_per_request_with_ids_and_no_personal_data(client, make_user, caplog):
    caplog.set_level(logging.INFO, logger="cloudmarket")
    user = await make_user("resident", phone="13912345678", name="王秀英")
    await client.login("13912345678", user["password"])
    await client.get("/?q=13912345678")
    formatter = LogfmtFormatter()
    lines = [formatter.format(r) for r in caplog.records if r.name.startswith("cloudmarket")]
    text = "\n".join(lines)
    assert "13912345678" not in text
    assert "王秀英" not in text
    assert user["password"] not in text
    requests = [line for line in lines if "msg=request" in line]
    assert len(requests) == 3  # GET /healthz (CSRF cookie), POST /login, GET /
    home = requests[-1]
    assert "method=GET path=/ status=200" in home
    assert f"user_id={user['id']}" in home
    assert "request_id=" in home
    assert "duration_ms=" in home


async def test_https_deployments_get_secure_host_only_session_cookies(client, make_user, monkeypatch):
    from marketplace.settings import get_settings

    monkeypatch.setitem(get_settings().__dict__, "base_url", "https://cs.example.gov.cn")
    user = await make_user("resident")
    response = await client.post_form(
        "/login",
        {"phone": user["phone"], "password": user["password"]},
        headers={"origin": "https://cs.example.gov.cn"},
    )
    assert response.status_code == 302
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-cm_session=")
    assert "Secure" in cookie
    assert "Domain" not in cookie
    assert "strict-transport-security" in response.headers
