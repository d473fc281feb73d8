"""Errors a person can cause get a clear message in their language; server errors leak nothing."""

from __future__ import annotations

import logging

import pytest
from litestar import get, post
from litestar.params import JSONBody
from msgspec import Struct

from marketplace.errors import Conflict, FieldError, ValidationFailed
from marketplace.i18n import N_


class Sample(Struct):
    level: int
    name: str


@get("/test-only/boom", sync_to_thread=False)
def boom() -> None:
    raise RuntimeError("secret internals: password=hunter2")


@get("/api/v1/test-only/boom", sync_to_thread=False)
def api_boom() -> None:
    raise RuntimeError("secret internals: password=hunter2")


@post("/api/v1/test-only/sample", sync_to_thread=False)
def sample(data: JSONBody[Sample]) -> Sample:
    if data.level not in (1, 2, 3):
        raise ValidationFailed(errors=[FieldError("level", N_("Choose a level from 1 to 3."))])
    return data


@post("/api/v1/test-only/conflict", sync_to_thread=False)
def conflict() -> None:
    raise Conflict()


@get("/api/v1/test-only/redis-down", sync_to_thread=False)
def redis_down() -> None:
    import redis.exceptions

    raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")


@get("/test-only/database-down", sync_to_thread=False)
def database_down() -> None:
    raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5439)")


@pytest.fixture(scope="module")
def app():
    """An app of this module's own, so that its test-only routes reach no other test."""
    from marketplace.app import create_app

    app = create_app(run_jobs=False)
    for handler in (boom, api_boom, sample, conflict, redis_down, database_down):
        app.register(handler)
    return app


@pytest.fixture
async def api(make_client, make_user):
    from marketplace import accounts

    issued = await accounts.create_api_client("test", [])
    return make_client(authorization=f"Bearer {issued.token}")


async def test_unknown_page_in_chinese_by_default(client):
    response = await client.get("/no/such/page")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN">' in response.text
    assert "此地址没有找到内容" in response.text
    # The security baseline holds on error pages too
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_unknown_page_in_english_when_the_browser_asks(client):
    response = await client.get("/no/such/page", headers={"accept-language": "en-GB,en;q=0.9,zh;q=0.5"})
    assert '<html lang="en">' in response.text
    assert "Nothing was found at this address" in response.text


async def test_language_choice_is_remembered(client):
    response = await client.post_form("/lang", {"locale": "en", "next": "/login"})
    assert response.status_code == 302
    page = await client.get("/login")
    assert "Mobile phone number" in page.text


async def test_logged_in_users_keep_their_language_on_the_account(logged_in):
    from marketplace.tables import User

    client, user = await logged_in("resident")
    await client.post_form("/lang", {"locale": "en", "next": "/"})
    assert (await User.select(User.locale).where(User.id == user["id"]).first())["locale"] == "en"


async def test_api_errors_are_problem_documents(client):
    response = await client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 404
    assert body["code"] == "not_found"
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]


async def test_domain_validation_names_the_field_in_the_users_language(api):
    response = await api.post("/api/v1/test-only/sample", json={"level": 7, "name": "x"})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_failed"
    assert body["errors"] == [{"field": "level", "message": "Choose a level from 1 to 3."}]


async def test_unparseable_bodies_name_the_field(api):
    response = await api.post(
        "/api/v1/test-only/sample", json={"level": "high"}, headers={"accept-language": "zh-CN"}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_request"
    assert body["title"] == "部分内容需要修改。"
    assert body["errors"]
    assert all(e["message"] == "此项缺失或格式不正确。" for e in body["errors"])


async def test_conflicts_say_what_to_do(api):
    response = await api.post("/api/v1/test-only/conflict", headers={"accept-language": "en"})
    assert response.status_code == 409
    assert "reload the page and try again" in response.json()["detail"]


async def test_server_errors_leak_no_trace(client, caplog):
    caplog.set_level(logging.ERROR, logger="cloudmarket.app")
    response = await client.get("/test-only/boom")
    assert response.status_code == 500
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    reference = response.headers["x-request-id"]
    assert reference in response.text
    # The operator finds the trace in the log under the same reference
    record = next(r for r in caplog.records if r.getMessage() == "unhandled error")
    assert record.exc_info is not None


async def test_api_server_errors_are_problems_without_a_trace(api):
    response = await api.get("/api/v1/test-only/boom")
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "hunter2" not in response.text


async def test_wrong_method_gets_a_readable_answer(client):
    response = await client.put("/healthz", headers={"accept-language": "en"})
    assert response.status_code == 405
    assert "This address does not accept this kind of request." in response.text


async def test_an_outage_is_a_503_that_says_to_try_again(api, client):
    response = await api.get("/api/v1/test-only/redis-down", headers={"accept-language": "en"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"
    body = response.json()
    assert body["code"] == "unavailable"
    assert "try again in a minute" in body["detail"]
    assert "6390" not in response.text  # where Redis lives is for the log only
    page = await client.get("/test-only/database-down")
    assert page.status_code == 503
    assert "5439" not in page.text
    assert "服务暂时不可用" in page.text


async def test_an_id_past_the_databases_range_is_bad_input_not_a_server_error(logged_in):
    admin, _ = await logged_in("admin")
    for path in ("/api/v1/categories/371394323024/cost?level=2&units=1", "/api/v1/providers/4294967296"):
        response = await admin.get(path)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["code"] == "not_found"


async def test_a_nul_character_in_a_search_is_not_a_server_error(logged_in):
    steward, _ = await logged_in("steward")
    response = await steward.get("/hsds/organizations", params={"search": "药\x00"})
    assert response.status_code in (200, 400), response.text  # SQLite takes it, PostgreSQL cannot


async def test_the_schema_documents_errors_as_the_problems_they_are(api):
    import jsonschema

    from marketplace.app import create_app, document_problems

    documented = create_app(run_jobs=False)
    document_problems(documented)  # on start-up, in a served process
    schema = documented.openapi_schema.to_schema()
    bad_request = schema["paths"]["/api/v1/providers"]["get"]["responses"]["400"]
    assert list(bad_request["content"]) == ["application/problem+json"]
    problem = await api.get("/api/v1/providers", params={"per_page": "many"})
    assert problem.status_code == 400
    assert problem.headers["content-type"].startswith("application/problem+json")
    jsonschema.validate(problem.json(), schema["components"]["schemas"]["Problem"])
