"""The feature server locked down (feature_repo.serving.server): tokens, write endpoints, body limit, cache.

Real uvicorn on loopback, embedded profile, the hand-built region of tests/hand_built.py.
"""

import asyncio
import http.client
import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest
from click.testing import CliRunner
from hand_built import TIMELINE
from test_server import NOW, call, check_patients

from feature_repo import apply_definitions, feature_store, materialize
from feature_repo.serving.server import (
    Lookups,
    ServerSettings,
    create_app,
    is_loopback,
    load_token,
    log_exposure,
    running,
)
from ingestion.cli import sdoh
from ingestion.core.errors import ServerSecurityError

READ = "read-token-" + "r" * 24
ADMIN = "admin-token-" + "a" * 24
LIMIT = 4096
# Feast 0.67's routes that write, administer or chat (get_app's routes minus the read ones).
WRITES = [("POST", "/write-to-online-store"), ("POST", "/push"), ("POST", "/materialize"),
          ("POST", "/materialize-incremental"), ("POST", "/chat"), ("GET", "/chat"),
          ("GET", "/static/index.html")]


def send(url: str, method: str, path: str, body=None, *, token: str | None = None,
         authorization: str | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request; (status, headers, raw body), whatever the status."""
    headers = {"Content-Type": "application/json"}
    if token or authorization:
        headers["Authorization"] = authorization or f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def served_tract(url: str) -> str:
    """The 2020 tract patient A is served (through the read token)."""
    status, reply = call(url, "/patients/features", {"patient_ids": ["A"], "at": NOW}, token=READ)
    assert status == 200, reply
    return reply["results"][0]["acs_tract__geoid"]


def region(ws) -> tuple:
    """The hand-built region of ``ws`` (a `hand_built_copy`) registered and materialized: (store, ws)."""
    store = feature_store(ws, profile="embedded")
    apply_definitions(store, ws)
    materialize(store, progress=False)
    return store, ws


@pytest.fixture(scope="module")
def shared_region(hand_built_store):
    """(store, ws) of the session's read-only hand-built store (the root conftest's)."""
    store, ws, _ = hand_built_store
    return store, ws


@pytest.fixture(scope="module")
def guarded(shared_region):
    """A server with a read token, write endpoints off, a 4 KiB body limit."""
    store, ws = shared_region
    with running(create_app(store, ws, settings=ServerSettings(token=READ, max_body_bytes=LIMIT))) as url:
        yield url


@pytest.fixture(scope="module")
def writable(hand_built_copy, tmp_path_factory):
    """A server of its own region with write endpoints enabled for the admin token."""
    store, ws = region(hand_built_copy(tmp_path_factory.mktemp("writable")))
    settings = ServerSettings(token=READ, admin_token=ADMIN, enable_write_endpoints=True)
    with running(create_app(store, ws, settings=settings)) as url:
        yield url


def a_new_tract_for_a() -> dict:
    """A /write-to-online-store body moving patient A's current address to tract 000302."""
    row = TIMELINE[(TIMELINE.patient_id == "A") & TIMELINE.valid_to.isna()]
    moved = row.assign(tract_geoid_2020="99001000302")
    columns = json.loads(moved.to_json(orient="columns", date_format="iso"))
    return {"feature_view_name": "patient_geography", "df": {k: list(v.values()) for k, v in columns.items()}}


DATA_ROUTES = [("POST", "/patients/features", {"patient_ids": ["A"]}),
               ("POST", "/locations/features", {"locations": ["99001000100"]}),
               ("POST", "/get-online-features", {"feature_service": "model_inputs_v1",
                                                  "entities": {"tract_geoid": ["99001000100"]}}),
               ("POST", "/search", {"features": [], "query": [0.0]}),
               ("GET", "/v1/vector_stores", None), ("GET", "/docs", None), ("GET", "/redoc", None),
               ("GET", "/openapi.json", None), ("GET", "/no-such-route", None),
               *((method, path, {}) for method, path in WRITES)]


@pytest.mark.parametrize(("method", "path", "body"), DATA_ROUTES)
@pytest.mark.parametrize(("token", "authorization", "challenge"), [
    (None, None, 'Bearer realm="sdoh"'),
    ("wrong-token-" + "w" * 24, None, 'Bearer realm="sdoh", error="invalid_token"'),
    (None, f"Basic {READ}", 'Bearer realm="sdoh"'),
    (READ[:-1], None, 'Bearer realm="sdoh", error="invalid_token"'),
])
def test_every_route_but_health_needs_the_token(guarded, method, path, body, token, authorization, challenge):
    status, headers, reply = send(guarded, method, path, body, token=token, authorization=authorization)
    assert status == 401, reply
    assert headers["WWW-Authenticate"] == challenge
    assert "bearer token" in json.loads(reply)["error"]


@pytest.mark.parametrize(("method", "path", "body", "content_type"), [
    ("GET", "/docs", None, "text/html"),
    ("GET", "/openapi.json", None, "application/json"),
    ("POST", "/get-online-features", {"feature_service": "model_inputs_v1", "full_feature_names": True,
                                      "entities": {"tract_geoid": ["99001000100"], "vintage": [2020],
                                                   "state_geoid": ["99"]}}, "application/json"),
])
def test_the_token_opens_the_read_routes(guarded, method, path, body, content_type):
    status, headers, reply = send(guarded, method, path, body, token=READ)
    assert status == 200, reply
    assert headers["Content-Type"].startswith(content_type)


def test_the_token_opens_the_lookups_and_health_needs_none(guarded):
    assert served_tract(guarded) == "99001000100"
    assert call(guarded, "/health")[0] == 200


def test_the_openapi_document_lists_no_write_route(guarded):
    status, _, reply = send(guarded, "GET", "/openapi.json", token=READ)
    paths = set(json.loads(reply)["paths"])
    assert status == 200 and {"/patients/features", "/get-online-features"} <= paths
    assert not paths & {path for _, path in WRITES}


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_write_endpoints_are_off_even_for_the_read_token(guarded, method, path):
    body = a_new_tract_for_a() if path == "/write-to-online-store" else {}
    status, _, reply = send(guarded, method, path, None if method == "GET" else body, token=READ)
    assert status == 404, reply
    assert served_tract(guarded) == "99001000100"


@pytest.mark.parametrize(("token", "status", "message"), [
    (None, 401, "missing bearer token"),
    ("wrong-token-" + "w" * 24, 401, "wrong bearer token"),
    (READ, 403, "does not open write endpoints"),
])
@pytest.mark.parametrize("path", ["/write-to-online-store", "/push", "/materialize"])
def test_enabled_write_endpoints_refuse_all_but_the_admin_token(writable, path, token, status, message):
    body = a_new_tract_for_a() if path == "/write-to-online-store" else {}
    got, _, reply = send(writable, "POST", path, body, token=token)
    assert got == status and message in json.loads(reply)["error"]
    assert served_tract(writable) == "99001000100"


def test_the_admin_token_opens_the_enabled_write_endpoints_only(hand_built_copy, tmp_path):
    store, ws = region(hand_built_copy(tmp_path))
    settings = ServerSettings(token=READ, admin_token=ADMIN, enable_write_endpoints=True)
    with running(create_app(store, ws, settings=settings)) as url:
        assert send(url, "POST", "/patients/features", {"patient_ids": ["A"]}, token=ADMIN)[0] == 401
        status, _, reply = send(url, "POST", "/write-to-online-store", a_new_tract_for_a(), token=ADMIN)
        assert status == 200, reply
        assert served_tract(url) == "99001000302"


def post_headers(url: str, headers: dict[str, str]) -> http.client.HTTPConnection:
    """A connection that sent a POST's headers (with the read token), ready for a body."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.putrequest("POST", "/patients/features")
    for name, value in {"Authorization": f"Bearer {READ}", "Content-Type": "application/json",
                        **headers}.items():
        connection.putheader(name, value)
    connection.endheaders()
    return connection


def test_a_declared_oversized_body_gets_413_before_it_is_sent(guarded):
    connection = post_headers(guarded, {"Content-Length": str(10**9)})
    reply = connection.getresponse()  # answered on the headers alone: no byte of the body was sent
    assert reply.status == 413 and f"larger than {LIMIT:,} bytes" in json.loads(reply.read())["error"]


def test_a_chunked_oversized_body_gets_413(guarded):
    connection = post_headers(guarded, {"Transfer-Encoding": "chunked"})
    chunk = b" " * 1000
    for _ in range(LIMIT // len(chunk) + 1):
        connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    reply = connection.getresponse()
    assert reply.status == 413 and "larger than" in json.loads(reply.read())["error"]


def test_a_body_within_the_limit_is_served(guarded):
    ids = ["A"] * ((LIMIT - 100) // 5)  # '"A", ' is 5 bytes
    status, reply = call(guarded, "/patients/features", {"patient_ids": ids, "at": NOW}, token=READ)
    assert status == 200 and len(reply["results"]) == len(ids)


def test_the_limit_stops_reading_an_endless_body(shared_region):
    """The ASGI app reads just past the limit and answers 413: it does not wait for the rest."""
    store, ws = shared_region
    app = create_app(store, ws, settings=ServerSettings(max_body_bytes=LIMIT))
    reads, sent = [], []

    async def receive():  # 50 kB in all, should the limit not stop it
        reads.append(1000)
        return {"type": "http.request", "body": b" " * 1000, "more_body": len(reads) < 50}

    async def collect(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/patients/features", "raw_path": b"/patients/features",
             "root_path": "", "query_string": b"", "headers": [(b"transfer-encoding", b"chunked")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}
    asyncio.run(app(scope, receive, collect))
    assert sent[0]["status"] == 413
    assert sum(reads) == LIMIT // 1000 * 1000 + 1000  # the first chunk past the limit, no more


class CountingRegistry:
    """Feast's registry, counting `list_feature_services` calls (or failing them with ``error``)."""

    def __init__(self, registry, error: Exception | None = None):
        self.registry, self.error, self.listed = registry, error, 0

    def list_feature_services(self, *args, **kwargs):
        self.listed += 1
        if self.error:
            raise self.error
        return self.registry.list_feature_services(*args, **kwargs)


def test_unknown_services_are_answered_from_the_cached_names(shared_region):
    store, ws = shared_region
    registry = CountingRegistry(store.registry)
    with running(create_app(store, ws, registry=registry)) as url:
        for name in ("nope_v1", "nope_v2", "nope_v1", "model_inputs_v1x"):
            status, reply = call(url, "/patients/features", {"patient_ids": ["A"], "feature_service": name})
            assert status == 404 and "choose one of ['equity_audit_v1', 'model_inputs_v1']" in reply["error"]
        check_patients(url)
    assert registry.listed == 1


def test_the_cached_names_are_listed_again_after_the_ttl_only(shared_region):
    store, ws = shared_region
    registry, now = CountingRegistry(store.registry), [0.0]
    lookups = Lookups(store, ws, None, registry=registry, ttl=30, clock=lambda: now[0])
    assert lookups.get("nope_v1") is None and registry.listed == 1
    now[0] = 29.9
    assert lookups.get("nope_v1") is None and registry.listed == 1
    now[0] = 30.0
    assert lookups.get("model_inputs_v1") is not None and registry.listed == 2
    assert lookups.get("model_inputs_v1") is lookups.get("model_inputs_v1")


def test_a_registry_outage_keeps_the_names_listed_before(shared_region, caplog):
    store, ws = shared_region
    registry, now = CountingRegistry(store.registry), [0.0]
    lookups = Lookups(store, ws, None, registry=registry, ttl=30, clock=lambda: now[0])
    assert lookups.get("nope_v1") is None and registry.listed == 1
    registry.error, now[0] = ConnectionError("registry down"), 31.0
    assert lookups.get("nope_v1") is None and registry.listed == 2
    assert "cannot list the feature services (ConnectionError): keeping the 2 listed" in caplog.text
    now[0] = 60.0  # within 30 s of the failed attempt: no new attempt
    assert "model_inputs_v1" in lookups.unknown("nope_v1").body.decode() and registry.listed == 2


@pytest.mark.parametrize(("path", "raw", "field"), [
    ("/patients/features", b'{"patient_ids": ["A", "\\ud800"]}', "patient_ids[1]"),
    ("/patients/features", b'{"patient_ids": ["A"], "feature_service": "x\\uDFFF"}', "feature_service"),
    ("/locations/features", b'{"locations": ["\\ud800"]}', "locations[0]"),
    ("/get-online-features", b'{"feature_service": "model_inputs_v1", "entities": {"tract_geoid": '
                             b'["99001000100", "\\udbff"]}}', "entities.tract_geoid[1]"),
    ("/get-online-features", b'{"entities": {"\\ud800": ["1"]}}', "a key of entities"),
])
def test_a_lone_surrogate_is_a_400_naming_the_field(guarded, path, raw, field):
    status, reply = call(guarded, path, raw=raw, token=READ)
    assert status == 400 and reply["detail"] == {"field": field}
    assert f"{field} is not valid Unicode" in reply["error"]


@pytest.mark.parametrize("raw", [b'{"patient_ids": ["\xed\xa0\x80"]}', b'{"patient_ids": ["\xff"]}'])
def test_a_body_that_is_not_utf8_is_a_400(guarded, raw):
    status, reply = call(guarded, "/patients/features", raw=raw, token=READ)
    assert status == 400 and "not valid UTF-8" in reply["error"]


def test_a_surrogate_pair_is_valid_text(guarded):
    raw = b'{"patient_ids": ["\\ud83d\\ude00"]}'
    status, reply = call(guarded, "/patients/features", raw=raw, token=READ)
    assert status == 200 and reply["results"][0]["patient_id"] == "\U0001f600"


def test_an_unexpected_failure_is_a_short_json_500(shared_region):
    store, ws = shared_region
    registry = CountingRegistry(store.registry, error=RuntimeError("secret internals at /etc/x"))
    with running(create_app(store, ws, registry=registry)) as url:
        status, headers, reply = send(url, "POST", "/patients/features", {"patient_ids": ["A"]})
    assert status == 500 and headers["Content-Type"] == "application/json"
    assert json.loads(reply)["error"] == "internal error (RuntimeError); the server log has the details"
    assert b"secret" not in reply and b"Traceback" not in reply


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "10.1.2.3", "feature-server.example"])
def test_a_non_loopback_host_without_a_token_is_refused(host):
    with pytest.raises(ServerSecurityError, match=rf"refusing to serve on {re.escape(host)} "
                                                  r"without authentication.*SDOH_SERVER_TOKEN"):
        ServerSettings(host=host)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"])
def test_loopback_serves_without_a_token(host):
    assert is_loopback(host) and ServerSettings(host=host).token is None


@pytest.mark.parametrize(("settings", "message"), [
    ({"enable_write_endpoints": True, "token": READ}, "write endpoints need their own token"),
    ({"token": READ, "admin_token": READ}, "the admin token equals the server token"),
    ({"token": "short"}, "server token is not usable: it must be at least 16"),
    ({"token": "has spaces " * 3}, "server token is not usable"),
    ({"admin_token": "x\u00e9" * 10}, "admin token is not usable"),
])
def test_unsafe_token_settings_are_refused(settings, message):
    with pytest.raises(ServerSecurityError, match=message):
        ServerSettings(**settings)


def test_tokens_never_appear_in_the_settings_repr():
    settings = ServerSettings(host="0.0.0.0", token=READ, admin_token=ADMIN, enable_write_endpoints=True)
    assert READ not in repr(settings) and ADMIN not in repr(settings)


@pytest.mark.parametrize(("settings", "level", "message"), [
    (ServerSettings(host="0.0.0.0", allow_unauthenticated=True), logging.WARNING,
     "UNAUTHENTICATED feature server on 0.0.0.0"),
    (ServerSettings(host="::", allow_unauthenticated=True), logging.WARNING,
     "UNAUTHENTICATED feature server on ::"),
    (ServerSettings(), logging.INFO, "without authentication: loopback"),
    (ServerSettings(host="0.0.0.0", token=READ), logging.INFO,
     "every route but /health requires the bearer token"),
])
def test_startup_says_who_can_call(caplog, settings, level, message):
    with caplog.at_level(logging.INFO, logger="feature_repo.serving.server"):
        log_exposure(settings)
    assert [(r.levelno, message in r.getMessage()) for r in caplog.records] == [(level, True)]
    assert READ not in caplog.text


def test_enabled_write_endpoints_are_warned_about(caplog):
    with caplog.at_level(logging.INFO, logger="feature_repo.serving.server"):
        log_exposure(ServerSettings(token=READ, admin_token=ADMIN, enable_write_endpoints=True))
    assert caplog.records[-1].levelno == logging.WARNING and "/write-to-online-store" in caplog.text
    assert READ not in caplog.text and ADMIN not in caplog.text


def test_the_serve_command_refuses_a_public_host_without_a_token(tmp_path):
    result = CliRunner().invoke(sdoh, ["serve", "--host", "0.0.0.0", "--workspace", str(tmp_path)],
                                env={"SDOH_SERVER_TOKEN": None, "SDOH_SERVER_ADMIN_TOKEN": None})
    assert result.exit_code == 1
    assert "refusing to serve on 0.0.0.0 without authentication" in result.output
    assert "--allow-unauthenticated" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(("mode", "content", "message"), [
    (0o644, READ, r"open to group or others \(mode 0644\).*chmod 600"),
    (0o640, READ, r"mode 0640"),
    (0o600, "\n", "is empty"),
])
def test_a_token_file_must_be_private_and_not_empty(tmp_path, mode, content, message):
    path = tmp_path / "token"
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(ServerSecurityError, match=message):
        load_token(path, environ={}, variable="SDOH_SERVER_TOKEN")


def test_a_token_file_wins_over_the_environment(tmp_path):
    path = tmp_path / "token"
    path.write_text(READ + "\n")
    path.chmod(0o600)
    assert load_token(path, environ={"SDOH_SERVER_TOKEN": ADMIN}, variable="SDOH_SERVER_TOKEN") == READ
    assert load_token(None, environ={"SDOH_SERVER_TOKEN": ADMIN}, variable="SDOH_SERVER_TOKEN") == ADMIN
    assert load_token(None, environ={"SDOH_SERVER_TOKEN": ""}, variable="SDOH_SERVER_TOKEN") is None


def test_the_serve_command_refuses_a_readable_token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(READ)
    path.chmod(0o644)
    result = CliRunner().invoke(sdoh, ["serve", "--host", "0.0.0.0", "--token-file", str(path),
                                       "--workspace", str(tmp_path)])
    assert result.exit_code == 1 and "chmod 600" in result.output


def test_serve_help_documents_the_lock_down():
    result = CliRunner().invoke(sdoh, ["serve", "--help"])
    assert result.exit_code == 0
    for text in ("SDOH_SERVER_TOKEN", "--token-file", "SDOH_SERVER_ADMIN_TOKEN", "--admin-token-file",
                 "--enable-write-endpoints", "--allow-unauthenticated", "--max-body-bytes", "401",
                 "403", "413", "Authorization: Bearer", "--host 0.0.0.0 --token-file token", "Example"):
        assert text in result.output, text
