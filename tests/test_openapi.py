"""docs/openapi.yaml is valid, matches the routes, and describes every real answer of the running service.

(a) the document is valid OpenAPI, its examples match its own schemas, and its error codes cover the contract's and
    every code the service's source raises;
(b) one test drives every documented operation (paying through the sandbox like tests/test_payment.py) and checks
    each answer: the exact status expected, that the status is documented for that operation, the documented
    headers, and the body against the documented schema (component schemas, $ref resolved, OpenAPI 3.0 `nullable`
    and formats honoured); at the end every documented status must have been seen, except those that only a
    dependency outage or a bug can cause (NOT_DRIVEN);
(c) every route of server.make_app (except /ws/orders and the dev-only /demo routes) is in the document with the
    methods its handler implements, and every documented path and method is routed to a handler that has it.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from collections import defaultdict
from pathlib import Path

import pytest
import tornado.web
import tornado.websocket
import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from openapi_spec_validator import validate as validate_spec
from tornado.websocket import websocket_connect

ROOT = Path(__file__).resolve().parent.parent
SPEC_FILE = ROOT / "docs" / "openapi.yaml"
SPEC = yaml.safe_load(SPEC_FILE.read_text(encoding="utf-8"))

RATE_LIMIT = 25
MAX_BODY = 4096
METHODS = ("get", "post", "put", "patch", "delete", "head", "options")

# The contract's error codes (shared/contract.md §2) and the extra ones the service uses.
CONTRACT_CODES = {"INVALID_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "TRIAL_ALREADY_BOOKED",
                  "PENDING_ORDER_EXISTS", "SOLD_OUT", "ORDER_NOT_PAYABLE", "AMOUNT_MISMATCH", "PAYLOAD_TOO_LARGE",
                  "RATE_LIMITED", "PAYMENT_UNAVAILABLE", "SERVICE_UNAVAILABLE"}
EXTRA_CODES = {"IDEMPOTENCY_KEY_REUSED", "SCHEDULE_CLOSED", "PAYMENT_REJECTED", "CAPACITY_BELOW_CONFIRMED",
               "INTERNAL_ERROR", "METHOD_NOT_ALLOWED"}

# Documented answers the drive test cannot cause from outside: a bug (500) or MySQL being down (503 on routes that
# only the database can fail). Everything else documented must be seen.
_DB_ONLY_503 = ("getReadiness", "listSchedules", "getSchedule", "createOrder", "listOrders", "getOrder",
                "wxpayPaymentCallback", "wxpayRefundCallback", "loginOperator", "adminListSchedules", "adminCreateSchedule",
                "adminChangeCapacity")
NOT_DRIVEN = {(op, "503") for op in _DB_ONLY_503}


# ---------------------------------------------------------------------------------------------------- the document


def _resolve(node):
    """Follow local `$ref`s to the node they name."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"only local references are used: {ref}"
        assert ref not in seen, f"reference loop at {ref}"
        seen.add(ref)
        node = SPEC
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


_VALIDATORS = {}


def _validator(schema):
    """An OpenAPI 3.0 schema validator whose `#/components/...` references resolve in the document."""
    key = json.dumps(schema, sort_keys=True)
    if key not in _VALIDATORS:
        root = {**schema, "components": SPEC["components"]}
        _VALIDATORS[key] = OAS30Validator(root, format_checker=oas30_format_checker)
    return _VALIDATORS[key]


def check_schema(instance, schema, what):
    """Fail with every violation of `schema` by `instance`."""
    errors = sorted(_validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, f"{what}: the answer does not match the document:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors[:10]) + (
        f"\n  instance: {json.dumps(instance, ensure_ascii=False)[:800]}")


def component(name):
    return {"$ref": f"#/components/schemas/{name}"}


def operations():
    """(path, method, operation) of every documented operation."""
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def operation(method, path):
    item = SPEC["paths"].get(path)
    assert item is not None, f"{path} is not documented"
    op = item.get(method.lower())
    assert op is not None, f"{method} {path} is not documented"
    return op


def _all_examples():
    """(where, example value, schema) of every example the document gives for a media type or a parameter."""
    for path, method, op in operations():
        places = [(f"{method.upper()} {path} request", op.get("requestBody", {}))]
        places += [(f"{method.upper()} {path} {status}", _resolve(r)) for status, r in op["responses"].items()]
        for where, holder in places:
            for ctype, media in _resolve(holder).get("content", {}).items():
                if "example" in media:
                    yield where, media["example"], media["schema"]
                for name, ex in media.get("examples", {}).items():
                    yield f"{where} ({name})", _resolve(ex)["value"], media["schema"]
        for param in [*SPEC["paths"][path].get("parameters", []), *op.get("parameters", [])]:
            param = _resolve(param)
            if "example" in param:
                yield f"{method.upper()} {path} parameter {param['name']}", param["example"], param["schema"]
    for name, schema in SPEC["components"]["schemas"].items():
        if "example" in schema:
            yield f"schema {name}", schema["example"], component(name)


def _service_error_codes():
    """Every error code the service's source can answer."""
    codes = set()
    files = [ROOT / "errors.py", *sorted((ROOT / "services").glob("*.py")), *sorted((ROOT / "handlers").glob("*.py"))]
    for f in files:
        text = f.read_text(encoding="utf-8")
        codes |= set(re.findall(r'ServiceError\(\s*\d{3}\s*,\s*"([A-Z_]+)"', text))
    base = (ROOT / "handlers" / "base.py").read_text(encoding="utf-8")
    codes |= set(re.findall(r'\d{3}:\s*"([A-Z_]+)"', base.split("_CODES = ", 1)[1].split("\n", 1)[0]))
    return codes


def _is_error_body(schema, path):
    """The Error schema, or one narrowing it with allOf (the probes and WeChat Pay's callback have their own)."""
    own = {"/readyz": "#/components/schemas/Readiness",
           "/api/v1/payment/wxpay/callback": "#/components/schemas/NotifyFailure",
           "/api/v1/payment/wxpay/refund-callback": "#/components/schemas/NotifyFailure"}
    if schema.get("$ref") in ("#/components/schemas/Error", own.get(path)):
        return True
    resolved = _resolve(schema)
    return bool(resolved.get("allOf")) and resolved["allOf"][0].get("$ref") == "#/components/schemas/Error"


def test_the_document_is_valid_openapi():
    assert SPEC["openapi"].startswith("3.0")
    validate_spec(SPEC)
    ids = [op["operationId"] for _, _, op in operations()]
    assert len(ids) == len(set(ids)), "operationIds are unique"
    for path, method, op in operations():
        assert op.get("tags") and op.get("summary"), f"{method} {path} has tags and a summary"
        assert "security" in op, f"{method} {path} says who may call it"
        schemes = {name for req in op["security"] for name in req}
        expected = ({"operatorBearer"} if path.startswith("/api/v1/admin/") and not path.endswith("/login")
                    else {"userBearer"} if path.startswith("/api/v1/payment/") and "callback" not in path
                    else set())
        assert schemes == expected, f"{method} {path}: security {schemes}, expected {expected}"
        if expected:
            assert "401" in op["responses"], f"{method} {path} needs a token, so documents 401"
        if "requestBody" in op:
            assert "413" in op["responses"], f"{method} {path} takes a body, so documents 413"
        for status, response in op["responses"].items():
            response = _resolve(response)
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert _is_error_body(schema, path), f"{method} {path} {status} answers the Error body"
    # The format checker must really check date-times, or `format: date-time` below would be decoration.
    assert not oas30_format_checker.conforms("2026-13-40 noon", "date-time")
    assert oas30_format_checker.conforms("2026-11-22T10:00:00+08:00", "date-time")


def test_the_examples_match_their_schemas():
    count = 0
    for where, value, schema in _all_examples():
        check_schema(value, schema, f"example of {where}")
        count += 1
    assert count > 40


def test_error_codes_cover_the_contract_and_the_service():
    enum = set(SPEC["components"]["schemas"]["ErrorCode"]["enum"])
    assert CONTRACT_CODES | EXTRA_CODES <= enum
    used = _service_error_codes() - {"ERROR"}  # "ERROR" only stands in for a status the service never raises
    assert used, "the service's error codes were found in its source"
    assert used <= enum, f"codes the service answers but the document lacks: {sorted(used - enum)}"
    assert enum <= used | {"INTERNAL_ERROR"}, f"documented codes the service never answers: {sorted(enum - used)}"


def test_objects_list_every_field_and_mark_the_nullable_ones():
    schemas = SPEC["components"]["schemas"]
    order = schemas["Order"]
    objects = {name: schemas[name] for name in ("Schedule", "Order", "RequestPaymentParams", "LoginResult",
                                                "OperatorLoginResult", "WsOrderStatus", "Health", "Readiness")}
    objects["Reservation"] = order["properties"]["reservation"]
    objects["LoginResult.user"] = schemas["LoginResult"]["properties"]["user"]
    objects["OperatorLoginResult.operator"] = schemas["OperatorLoginResult"]["properties"]["operator"]
    for name, schema in objects.items():
        assert schema.get("additionalProperties") is False, f"{name} is closed, so a new field needs the document"
        assert set(schema["required"]) == set(schema["properties"]), f"{name}: every field is always present"
    assert set(order["properties"]) == {
        "order_id", "status", "amount_fen", "amount", "currency", "course_schedule_id", "created_at", "expires_at",
        "paid_at", "transaction_id", "refunded_fen", "failure_reason", "reservation"}
    assert set(objects["Reservation"]["properties"]) == {"reservation_id", "status", "expires_at", "confirmed_at"}
    assert set(schemas["Schedule"]["properties"]) == {"id", "title", "starts_at", "capacity", "remaining",
                                                      "price_fen", "price"}
    nullable = {n for n, p in order["properties"].items() if p.get("nullable")}
    assert nullable == {"paid_at", "transaction_id", "failure_reason", "reservation"}
    assert objects["Reservation"]["properties"]["confirmed_at"].get("nullable") is True
    assert set(_resolve(component("OrderStatus"))["enum"]) == {
        "pending", "paid", "failed", "cancelled", "expired", "refund_required", "refunded"}
    assert set(_resolve(component("ReservationStatus"))["enum"]) == {"temporary", "confirmed", "cancelled", "expired"}


# ---------------------------------------------------------------------------------------------------- the routes


def _route_template(pattern: str) -> tuple[str, int]:
    """A route regex as a path template with `{}` for each capture group, and the number of groups."""
    pattern = pattern.removesuffix("$")
    out, depth, groups = [], 0, 0
    for ch in pattern:
        if ch == "(":
            if depth == 0:
                out.append("{}")
                groups += 1
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out).replace("\\", ""), groups


def _implemented(handler) -> set[str]:
    if issubclass(handler, tornado.websocket.WebSocketHandler):
        return {"get"}
    return {m for m in METHODS if getattr(handler, m, None) is not getattr(tornado.web.RequestHandler, m, None)}


def _example_path(path):
    """The documented path with each parameter replaced by its example."""
    item = SPEC["paths"][path]
    params = {}
    for param in item.get("parameters", []):
        param = _resolve(param)
        if param["in"] == "path":
            params[param["name"]] = str(param["example"])
    return path.format(**params)


def test_every_route_is_documented_and_every_documented_path_is_routed(app):
    rules = app.wildcard_router.rules
    routed = {}
    for rule in rules:
        pattern = rule.matcher.regex.pattern
        template, groups = _route_template(pattern)
        if template == "/ws/orders" or template.startswith("/demo"):
            continue
        routed[template] = (rule.target, groups)
    documented = {re.sub(r"\{[^}]+\}", "{}", path): path for path in SPEC["paths"]}
    assert set(routed) - set(documented) == set(), "routes missing from docs/openapi.yaml"
    assert set(documented) - set(routed) == set(), "documented paths that no route serves"
    for template, (handler, groups) in routed.items():
        path = documented[template]
        assert path.count("{") == groups, f"{path}: as many parameters as the route captures"
        spec_methods = {m for m in METHODS if m in SPEC["paths"][path]}
        assert spec_methods == _implemented(handler), (
            f"{path}: documented {sorted(spec_methods)}, {handler.__name__} implements {sorted(_implemented(handler))}")
        # A concrete path built from the documented examples reaches this very handler (route order matters:
        # /api/v1/payment/orders/create must not be taken for an order id, nor the other way round).
        concrete = _example_path(path)
        first = next(r for r in rules if r.matcher.regex.match(concrete))
        assert first.target is handler, f"{concrete} is served by {first.target.__name__}, not {handler.__name__}"


# ---------------------------------------------------------------------------------------------------- the service


@pytest.fixture
def overrides():
    """Rate limits on (low enough to reach) and a small body limit, so 429 and 413 are driven too."""
    return {"RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT), "MAX_BODY_BYTES": str(MAX_BODY)}


class Contract:
    """Calls the service and checks each answer against the document; remembers which statuses were seen."""

    def __init__(self, api):
        self.api = api
        self.seen = defaultdict(set)

    async def call(self, method, path, expect, *, params=None, body=None, raw=None, token=None, headers=None,
                   code=None, check_request=True):
        """Call `method path` (a documented template), require status `expect` (an int or a set) and check it."""
        op = operation(method, path)
        concrete = path.format(**(params or {}))
        expected = {expect} if isinstance(expect, int) else set(expect)
        if body is not None and check_request and min(expected) < 300:
            check_schema(body, _resolve(op["requestBody"])["content"]["application/json"]["schema"],
                         f"the request body sent to {method} {path}")
        status, data, hdrs = await self.api.call(method, concrete, body=body, raw=raw, token=token, headers=headers)
        where = f"{method} {concrete} ({op['operationId']})"
        assert status in expected, f"{where}: expected {sorted(expected)}, got {status}: {data!r:.400}"
        self.check_answer(op, where, status, data, hdrs)
        if code is not None:
            assert data["error"]["code"] == code, f"{where}: expected {code}, got {data}"
        return (status, data) if len(expected) > 1 else data

    def check_answer(self, op, where, status, data, hdrs):
        responses = op["responses"]
        assert str(status) in responses, f"{where}: status {status} is not documented ({sorted(responses)})"
        self.seen[op["operationId"]].add(str(status))
        response = _resolve(responses[str(status)])
        for name, header in response.get("headers", {}).items():
            header = _resolve(header)
            if header.get("required"):
                assert name in hdrs, f"{where}: the documented header {name} is missing"
                value = hdrs[name]
                if header["schema"].get("type") == "integer":
                    assert value.isdigit(), f"{where}: {name}: {value!r}"
                    value = int(value)
                check_schema(value, header["schema"], f"{where} header {name}")
        content = response.get("content")
        if not content:
            assert data in (b"", None), f"{where}: {status} is documented without a body, got {data!r:.200}"
            return
        ctype = hdrs.get("Content-Type", "").split(";")[0].strip()
        assert ctype in content, f"{where}: Content-Type {ctype!r} is not documented ({sorted(content)})"
        if ctype == "application/json":
            assert not isinstance(data, bytes), f"{where}: not JSON: {data!r:.200}"
            check_schema(data, content[ctype]["schema"], where)
        elif ctype == "image/png":
            assert isinstance(data, bytes) and data.startswith(b"\x89PNG\r\n\x1a\n"), f"{where}: not a PNG"
        else:  # pragma: no cover - the document has only these two
            raise AssertionError(f"{where}: no check for {ctype}")

    def record(self, operation_id, method, path, status):
        """A status the service gave to someone else (the sandbox delivering a notification)."""
        op = operation(method, path)
        assert op["operationId"] == operation_id
        assert str(status) in op["responses"], f"{method} {path} answered the sandbox {status}, undocumented"
        self.seen[operation_id].add(str(status))


async def _ws_frame(conn, timeout=15):
    message = await asyncio.wait_for(conn.read_message(), timeout)
    assert message is not None, f"socket closed: {conn.close_code} {conn.close_reason}"
    frame = json.loads(message)
    check_schema(frame, component("WsServerMessage"), "a /ws/orders frame")
    kind = {"order.status": "WsOrderStatus", "error": "WsError", "pong": "WsPong"}[frame["type"]]
    check_schema(frame, component(kind), f"a /ws/orders {frame['type']} frame")
    return frame


def _pad(n=MAX_BODY + 100):
    return {"pad": "x" * n}


@pytest.mark.gen_test(timeout=240)
async def test_every_operation_answers_as_documented(api, ctx, sandbox, base_url):
    from services.accounts.auth import create_operator
    from tests.forge import Forger

    c = Contract(api)
    async for key in ctx.redis.scan_iter(match="gym:rl:*"):  # a previous run in this minute must not count here
        await ctx.redis.delete(key)

    # -- operations
    assert (await c.call("GET", "/healthz", 200)) == {"status": "ok"}
    assert (await c.call("GET", "/readyz", 200)) == {"mysql": "ok", "redis": "ok"}

    # -- operators
    ops = {}
    for role in ("admin", "finance", "staff"):
        name = f"openapi-{role}-{time.monotonic_ns()}"
        await create_operator(name, "correct-horse-battery", role)
        login = await c.call("POST", "/api/v1/admin/login", 200,
                             body={"username": name, "password": "correct-horse-battery"})
        assert login["operator"]["role"] == role and login["operator"]["username"] == name
        ops[role] = login["token"]
    await c.call("POST", "/api/v1/admin/login", 400, body={"username": "nobody"}, code="INVALID_REQUEST")
    await c.call("POST", "/api/v1/admin/login", 401, body={"username": "nobody", "password": "wrong-password"},
                 code="UNAUTHENTICATED")
    await c.call("POST", "/api/v1/admin/login", 413, body=_pad(), code="PAYLOAD_TOO_LARGE")

    now = dt.datetime.now(dt.timezone.utc)
    SCHEDULES = "/api/v1/admin/schedules"

    async def new_schedule(capacity, days, token=None):
        data = await c.call("POST", SCHEDULES, 201, token=token or ops["admin"], body={
            "title": "体验课（OpenAPI）", "starts_at": (now + dt.timedelta(days=days)).isoformat(), "capacity": capacity})
        assert data["capacity"] == capacity and data["remaining"] == capacity and data["price_fen"] == 20000
        return data["id"]

    sid1 = await new_schedule(1, 3)  # one seat: A books it, B finds it sold out
    sid2 = await new_schedule(10, 4, token=ops["staff"])
    sid_past = await new_schedule(5, -1)  # already started
    good_schedule = {"title": "体验课", "starts_at": (now + dt.timedelta(days=5)).isoformat(), "capacity": 3}
    await c.call("POST", SCHEDULES, 401, body=good_schedule, code="UNAUTHENTICATED")
    await c.call("POST", SCHEDULES, 401, body=good_schedule, token="forged.token", code="UNAUTHENTICATED")
    await c.call("POST", SCHEDULES, 403, body=good_schedule, token=ops["finance"], code="FORBIDDEN")
    await c.call("POST", SCHEDULES, 400, body={**good_schedule, "capacity": 0}, token=ops["admin"],
                 code="INVALID_REQUEST")
    await c.call("POST", SCHEDULES, 400, body={**good_schedule, "starts_at": "next tuesday"}, token=ops["admin"],
                 code="INVALID_REQUEST")
    await c.call("POST", SCHEDULES, 413, body=_pad(), token=ops["admin"], code="PAYLOAD_TOO_LARGE")
    for role in ("admin", "finance", "staff"):
        listed = await c.call("GET", SCHEDULES, 200, token=ops[role])
        assert {sid1, sid2, sid_past} <= {s["id"] for s in listed["items"]}
    await c.call("GET", SCHEDULES, 401, code="UNAUTHENTICATED")

    # -- parents
    async def login_user():
        minted = await api.control("POST", "/sandbox/wx/login", {})
        data = await c.call("POST", "/api/v1/auth/login", 200, body={"code": minted["code"]})
        assert data["expires_in"] > 0 and data["user"]["openid_masked"] != minted["openid"]
        return data["token"], minted["openid"]

    (ta, openid_a), (tb, _), (tc, _), (td, _) = [await login_user() for _ in range(4)]
    await c.call("POST", "/api/v1/auth/login", 400, body={}, code="INVALID_REQUEST")
    await c.call("POST", "/api/v1/auth/login", 400, raw=b"{not json", code="INVALID_REQUEST")
    await c.call("POST", "/api/v1/auth/login", 401, body={"code": "not-a-code-wechat-gave"}, code="UNAUTHENTICATED")
    await c.call("POST", "/api/v1/auth/login", 413, body=_pad(), code="PAYLOAD_TOO_LARGE")
    await api.control("POST", "/sandbox/faults", {"path_prefix": "/sns/jscode2session", "status": 500, "count": 1})
    minted = await api.control("POST", "/sandbox/wx/login", {})
    await c.call("POST", "/api/v1/auth/login", 503, body={"code": minted["code"]}, code="SERVICE_UNAVAILABLE")

    # admin routes refuse a parent's token, and an operator whose role lacks the right
    await c.call("GET", SCHEDULES, 403, token=ta, code="FORBIDDEN")
    await c.call("POST", SCHEDULES, 403, body=good_schedule, token=ta, code="FORBIDDEN")

    # -- public schedules
    listed = await c.call("GET", "/api/v1/courses/schedules", 200)
    ids = {s["id"] for s in listed["items"]}
    assert {sid1, sid2} <= ids and sid_past not in ids
    one = await c.call("GET", "/api/v1/courses/schedules/{schedule_id}", 200, params={"schedule_id": sid1})
    assert one["id"] == sid1 and one["remaining"] == 1 and one["price"] == "200.00"
    await c.call("GET", "/api/v1/courses/schedules/{schedule_id}", 404, params={"schedule_id": 987654321098},
                 code="NOT_FOUND")

    # -- orders
    CREATE = "/api/v1/payment/orders/create"
    await c.call("POST", CREATE, 401, body={"course_schedule_id": sid1}, code="UNAUTHENTICATED")
    await c.call("POST", CREATE, 400, body={"course_schedule_id": "abc"}, token=ta, code="INVALID_REQUEST",
                 check_request=False)
    await c.call("POST", CREATE, 400, body={"course_schedule_id": sid1, "amount": "two hundred"}, token=ta,
                 code="INVALID_REQUEST")
    await c.call("POST", CREATE, 400, body={"course_schedule_id": sid1}, token=ta, code="INVALID_REQUEST",
                 headers={"Idempotency-Key": "k" * 129})
    await c.call("POST", CREATE, 422, body={"course_schedule_id": sid1, "amount": "0.01"}, token=ta,
                 code="AMOUNT_MISMATCH")
    await c.call("POST", CREATE, 404, body={"course_schedule_id": 987654321098}, token=ta, code="NOT_FOUND")
    await c.call("POST", CREATE, 409, body={"course_schedule_id": sid_past}, token=ta, code="SCHEDULE_CLOSED")
    await c.call("POST", CREATE, 413, body={"course_schedule_id": sid1, **_pad()}, token=ta,
                 code="PAYLOAD_TOO_LARGE")
    key = {"Idempotency-Key": f"openapi-{time.monotonic_ns()}"}
    order_a = await c.call("POST", CREATE, 201, body={"course_schedule_id": sid1, "amount": "200.00"}, token=ta,
                           headers=key)
    a_id = order_a["order_id"]
    assert order_a["status"] == "pending" and order_a["amount_fen"] == 20000 and order_a["amount"] == "200.00"
    assert order_a["paid_at"] is None and order_a["transaction_id"] is None and order_a["failure_reason"] is None
    assert order_a["reservation"]["status"] == "temporary" and order_a["reservation"]["confirmed_at"] is None
    again = await c.call("POST", CREATE, 201, body={"course_schedule_id": sid1, "amount": "200.00"}, token=ta,
                         headers=key)
    assert again["order_id"] == a_id
    await c.call("POST", CREATE, 422, body={"course_schedule_id": sid2}, token=ta, headers=key,
                 code="IDEMPOTENCY_KEY_REUSED")
    same = await c.call("POST", CREATE, 200, body={"course_schedule_id": sid1, "amount": 200}, token=ta)
    assert same["order_id"] == a_id
    pending = await c.call("POST", CREATE, 409, body={"course_schedule_id": sid2}, token=ta,
                           code="PENDING_ORDER_EXISTS")
    assert pending["error"]["order_id"] == a_id
    await c.call("POST", CREATE, 409, body={"course_schedule_id": sid1}, token=tb, code="SOLD_OUT")
    order_b = await c.call("POST", CREATE, 201, body={"course_schedule_id": sid2}, token=tb)
    order_c = await c.call("POST", CREATE, 201, body={"course_schedule_id": sid2}, token=tc)
    order_d = await c.call("POST", CREATE, 201, body={"course_schedule_id": sid2}, token=td)
    b_id, c_id, d_id = order_b["order_id"], order_c["order_id"], order_d["order_id"]

    ORDERS, ORDER = "/api/v1/payment/orders", "/api/v1/payment/orders/{order_id}"
    mine = await c.call("GET", ORDERS, 200, token=ta)
    assert [o["order_id"] for o in mine["items"]] == [a_id]
    await c.call("GET", ORDERS, 401, code="UNAUTHENTICATED")
    await c.call("GET", ORDERS, 401, token="forged.token", code="UNAUTHENTICATED")
    await c.call("GET", ORDERS, 401, token=ops["admin"], code="UNAUTHENTICATED")
    assert (await c.call("GET", ORDER, 200, params={"order_id": a_id}, token=ta))["order_id"] == a_id
    await c.call("GET", ORDER, 401, params={"order_id": a_id}, code="UNAUTHENTICATED")
    await c.call("GET", ORDER, 404, params={"order_id": a_id}, token=tb, code="NOT_FOUND")  # another's order
    await c.call("GET", ORDER, 404, params={"order_id": "0" * 32}, token=ta, code="NOT_FOUND")
    await c.call("GET", ORDER, 404, params={"order_id": "short"}, token=ta, code="NOT_FOUND")

    # -- payment: JSAPI for A (watched live over the WebSocket), Native QR for B
    PAY, QR = "/api/v1/payment/wxpay/create", "/api/v1/payment/wxpay/qrcode/{order_id}"
    ws_url = base_url.replace("http://", "ws://") + "/ws/orders?token="
    refused = await websocket_connect(ws_url + "not-a-token")
    assert await refused.read_message() is None and refused.close_code == 4401
    conn = await websocket_connect(ws_url + ta)
    conn.write_message(json.dumps({"op": "subscribe", "order_id": a_id}))
    first = await _ws_frame(conn)
    assert (first["type"], first["order_id"], first["status"], first["reservation_status"]) == (
        "order.status", a_id, "pending", "temporary")
    conn.write_message(json.dumps({"op": "subscribe", "order_id": b_id}))
    err = await _ws_frame(conn)
    assert (err["type"], err["code"], err["order_id"]) == ("error", "NOT_FOUND", b_id)
    conn.write_message("not json")
    assert (await _ws_frame(conn))["code"] == "INVALID_REQUEST"
    conn.write_message(json.dumps({"op": "ping"}))
    assert (await _ws_frame(conn)) == {"type": "pong"}

    await c.call("POST", PAY, 400, body={}, token=ta, code="INVALID_REQUEST", check_request=False)
    await c.call("POST", PAY, 401, body={"order_id": a_id}, code="UNAUTHENTICATED")
    await c.call("POST", PAY, 404, body={"order_id": a_id}, token=tb, code="NOT_FOUND")
    await c.call("POST", PAY, 413, body={"order_id": a_id, **_pad()}, token=ta, code="PAYLOAD_TOO_LARGE")
    params = await c.call("POST", PAY, 200, body={"order_id": a_id}, token=ta)
    assert params["package"].startswith("prepay_id=") and params["signType"] == "RSA"
    assert (await c.call("POST", PAY, 200, body={"order_id": a_id}, token=ta))["package"] == params["package"]
    await c.call("GET", QR, 409, params={"order_id": a_id}, token=ta, code="ORDER_NOT_PAYABLE")  # JSAPI chosen

    png = await c.call("GET", QR, 200, params={"order_id": b_id}, token=tb)
    assert len(png) > 100
    await c.call("POST", PAY, 409, body={"order_id": b_id}, token=tb, code="ORDER_NOT_PAYABLE")  # QR chosen
    await c.call("GET", QR, 401, params={"order_id": b_id}, code="UNAUTHENTICATED")
    await c.call("GET", QR, 404, params={"order_id": b_id}, token=ta, code="NOT_FOUND")

    # WeChat Pay refusing for good, and WeChat Pay down
    await api.control("POST", "/sandbox/faults", {"path_prefix": "/v3/pay/transactions/jsapi", "status": 400,
                                                  "code": "PARAM_ERROR", "message": "参数错误", "count": 1})
    rejected = await c.call("POST", PAY, 422, body={"order_id": c_id}, token=tc, code="PAYMENT_REJECTED")
    assert rejected["error"]["wechat_code"] == "PARAM_ERROR"
    await api.control("POST", "/sandbox/faults", {"path_prefix": "/v3/pay/transactions/jsapi", "status": 500,
                                                  "count": 1})
    await c.call("POST", PAY, 503, body={"order_id": c_id}, token=tc, code="PAYMENT_UNAVAILABLE")
    await api.control("POST", "/sandbox/faults", {"path_prefix": "/v3/pay/transactions/native", "status": 400,
                                                  "code": "PARAM_ERROR", "message": "参数错误", "count": 1})
    await c.call("GET", QR, 422, params={"order_id": d_id}, token=td, code="PAYMENT_REJECTED")
    await api.control("POST", "/sandbox/faults", {"path_prefix": "/v3/pay/transactions/native", "status": 503,
                                                  "count": 1})
    await c.call("GET", QR, 503, params={"order_id": d_id}, token=td, code="PAYMENT_UNAVAILABLE")

    # A pays through the sandbox; WeChat Pay notifies the service, and the socket sees it
    await api.control("POST", f"/sandbox/orders/{a_id}/pay", {"notify": True})
    while True:
        frame = await _ws_frame(conn, timeout=30)
        assert frame["type"] == "order.status" and frame["order_id"] == a_id
        if frame["status"] == "paid":
            assert frame["reservation_status"] == "confirmed"
            break
    conn.close()
    paid = await c.call("GET", ORDER, 200, params={"order_id": a_id}, token=ta)
    assert paid["status"] == "paid" and paid["transaction_id"] and paid["paid_at"]
    assert paid["reservation"]["status"] == "confirmed" and paid["reservation"]["confirmed_at"]
    sent = (await api.control("GET", f"/sandbox/notifications?out_trade_no={a_id}"))["items"]
    attempts = [a["status"] for n in sent if n.get("out_trade_no") == a_id for a in n["attempts"]]
    assert 204 in attempts, sent
    for status in attempts:
        c.record("wxpayPaymentCallback", "POST", "/api/v1/payment/wxpay/callback", status)

    # The notification endpoint directly: a repeat of the handled notification, forgeries, a malformed body
    CALLBACK = "/api/v1/payment/wxpay/callback"
    forger = Forger(sandbox.state_dir, sandbox.env)
    txn = forger.transaction(a_id, openid=openid_a)
    body = forger.body(txn)
    await c.call("POST", CALLBACK, 204, raw=body, headers=forger.headers(body))
    bad = {**forger.headers(body), "Wechatpay-Signature": "eHh4"}
    assert (await c.call("POST", CALLBACK, 401, raw=body, headers=bad))["code"] == "FAIL"
    stale = forger.headers(body, timestamp=time.time() - 3600)
    assert (await c.call("POST", CALLBACK, 401, raw=body, headers=stale))["code"] == "FAIL"
    await c.call("POST", CALLBACK, 401, raw=body, headers={"Content-Type": "application/json"})
    garbage = b'{"id": "EV-1", "resource": {"ciphertext": "AAAA", "nonce": "x", "algorithm": "AEAD_AES_256_GCM"}}'
    assert (await c.call("POST", CALLBACK, 400, raw=garbage, headers=forger.headers(garbage)))["code"] == "FAIL"
    big = json.dumps(_pad()).encode()
    await c.call("POST", CALLBACK, 413, raw=big, headers=forger.headers(big), code="PAYLOAD_TOO_LARGE")

    # The refund notification endpoint: an unknown refund is recorded and acknowledged; forgeries are refused
    REFUND_CALLBACK = "/api/v1/payment/wxpay/refund-callback"
    refund_body = forger.body({"mchid": sandbox.env["WECHATPAY_MCHID"], "out_trade_no": a_id,
                               "out_refund_no": "R-unknown", "refund_status": "SUCCESS",
                               "amount": {"total": 20000, "refund": 20000}}, event_type="REFUND.SUCCESS")
    await c.call("POST", REFUND_CALLBACK, 204, raw=refund_body, headers=forger.headers(refund_body))
    bad = {**forger.headers(refund_body), "Wechatpay-Signature": "eHh4"}
    assert (await c.call("POST", REFUND_CALLBACK, 401, raw=refund_body, headers=bad))["code"] == "FAIL"
    assert (await c.call("POST", REFUND_CALLBACK, 400, raw=garbage,
                         headers=forger.headers(garbage)))["code"] == "FAIL"
    await c.call("POST", REFUND_CALLBACK, 413, raw=big, headers=forger.headers(big), code="PAYLOAD_TOO_LARGE")

    # After payment: one trial per parent, the order no longer payable, the seat not to be taken away
    await c.call("POST", CREATE, 409, body={"course_schedule_id": sid2}, token=ta, code="TRIAL_ALREADY_BOOKED")
    await c.call("POST", PAY, 409, body={"order_id": a_id}, token=ta, code="ORDER_NOT_PAYABLE")
    assert (await c.call("GET", "/api/v1/courses/schedules/{schedule_id}", 200,
                         params={"schedule_id": sid1}))["remaining"] == 0

    PATCH = "/api/v1/admin/schedules/{schedule_id}"
    await c.call("PATCH", PATCH, 409, params={"schedule_id": sid1}, body={"capacity": 0}, token=ops["admin"],
                 code="CAPACITY_BELOW_CONFIRMED")
    changed = await c.call("PATCH", PATCH, 200, params={"schedule_id": sid2}, body={"capacity": 12},
                           token=ops["staff"])
    assert changed["id"] == sid2 and changed["capacity"] == 12
    await c.call("PATCH", PATCH, 400, params={"schedule_id": sid2}, body={"capacity": -1}, token=ops["admin"],
                 code="INVALID_REQUEST")
    await c.call("PATCH", PATCH, 401, params={"schedule_id": sid2}, body={"capacity": 5}, code="UNAUTHENTICATED")
    await c.call("PATCH", PATCH, 403, params={"schedule_id": sid2}, body={"capacity": 5}, token=ops["finance"],
                 code="FORBIDDEN")
    await c.call("PATCH", PATCH, 403, params={"schedule_id": sid2}, body={"capacity": 5}, token=ta,
                 code="FORBIDDEN")
    await c.call("PATCH", PATCH, 404, params={"schedule_id": 987654321098}, body={"capacity": 5},
                 token=ops["admin"], code="NOT_FOUND")
    await c.call("PATCH", PATCH, 413, params={"schedule_id": sid2}, body={"capacity": 5, **_pad()},
                 token=ops["admin"], code="PAYLOAD_TOO_LARGE")

    # -- cancel
    CANCEL = "/api/v1/payment/orders/{order_id}/cancel"
    stays = await c.call("POST", CANCEL, 200, params={"order_id": a_id}, body={}, token=ta)
    assert stays["status"] == "paid"  # a paid order is answered as it stands
    await c.call("POST", CANCEL, 400, params={"order_id": b_id}, body={"reason": "bored"}, token=tb,
                 code="INVALID_REQUEST", check_request=False)
    await c.call("POST", CANCEL, 401, params={"order_id": b_id}, body={}, code="UNAUTHENTICATED")
    await c.call("POST", CANCEL, 404, params={"order_id": b_id}, body={}, token=ta, code="NOT_FOUND")
    await c.call("POST", CANCEL, 413, params={"order_id": b_id}, body=_pad(), token=tb, code="PAYLOAD_TOO_LARGE")
    await api.control("POST", "/sandbox/faults", {
        "path_prefix": f"/v3/pay/transactions/out-trade-no/{b_id}/close", "status": 500, "count": 1})
    await c.call("POST", CANCEL, 503, params={"order_id": b_id}, body={}, token=tb, code="PAYMENT_UNAVAILABLE")
    cancelled = await c.call("POST", CANCEL, 200, params={"order_id": b_id}, body={"reason": "user_cancelled"},
                             token=tb)
    assert cancelled["status"] == "cancelled" and cancelled["reservation"]["status"] == "cancelled"
    failed = await c.call("POST", CANCEL, 200, params={"order_id": c_id}, body={"reason": "payment_failed"}, token=tc)
    assert failed["status"] == "failed" and failed["failure_reason"] == "payment_failed"
    cancelled = await c.call("POST", CANCEL, 200, params={"order_id": d_id}, token=td)  # no body: the default
    assert cancelled["status"] == "cancelled"

    # -- not operations, but the same Error body
    status, body, _ = await api.call("DELETE", ORDERS, token=ta)
    assert status == 405
    check_schema(body, component("Error"), "DELETE /api/v1/payment/orders")
    assert body["error"]["code"] == "METHOD_NOT_ALLOWED"
    status, body, _ = await api.call("GET", "/api/v1/nothing-here")
    assert status == 404
    check_schema(body, component("Error"), "GET /api/v1/nothing-here")

    # -- rate limits, last, because they use the login allowance up
    async def until_limited(method, path, **kw):
        for _ in range(3 * RATE_LIMIT):
            status, _ = await c.call(method, path, {200, 201, 400, 401, 429}, **kw)
            if status == 429:
                return
        raise AssertionError(f"{method} {path} was never rate-limited")

    te, _ = await login_user()
    await until_limited("POST", CREATE, body={"course_schedule_id": sid2}, token=te)
    await until_limited("POST", "/api/v1/admin/login", body={"username": "nobody", "password": "wrong-password"})
    await until_limited("POST", "/api/v1/auth/login", body={"code": "not-a-code-wechat-gave"})
    for op_id, path, method in (("createOrder", CREATE, "POST"), ("loginUser", "/api/v1/auth/login", "POST"),
                                ("loginOperator", "/api/v1/admin/login", "POST")):
        assert "429" in c.seen[op_id], f"{method} {path} answered 429"

    # -- every documented answer was seen (other than a bug's 500 and a database outage's 503)
    missing = {}
    for path, method, op in operations():
        wanted = {s for s in op["responses"] if s != "500" and (op["operationId"], s) not in NOT_DRIVEN}
        if wanted - c.seen[op["operationId"]]:
            missing[f"{method.upper()} {path}"] = sorted(wanted - c.seen[op["operationId"]])
    assert not missing, f"documented answers the test never saw: {missing}"
