"""The named hostile inputs: each once took seconds of CPU, answered 5xx or dropped the connection.

Every one must be answered with the contract's 4xx and cost well under a second of CPU (the service runs in this
process, so `time.process_time` counts its work on the request).
"""
import datetime as dt
import socket
import time

import pytest

ORDER = "/api/v1/payment/orders/create"


async def _timed(api, *args, **kwargs):
    started = time.process_time()
    status, body, headers = await api.call(*args, **kwargs)
    return status, body, time.process_time() - started


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("amount, status", [
    ("1e999990", 422), ("1e5000", 422), ("1e999999", 422), ("-1e999999", 422), ("9" * 60000, 422),
    ("1" * 59999 + "x", 400), ("Infinity", 400), ("NaN", 400), ("200.001", 422), ("2e2", 201),
])
async def test_huge_or_odd_amounts_are_refused_cheaply(api, amount, status):
    sid = await api.schedule()
    token, _ = await api.login()
    code, body, cpu = await _timed(api, "POST", ORDER, {"course_schedule_id": sid, "amount": amount}, token=token)
    assert code == status, body
    if status == 422:
        assert body["error"]["code"] == "AMOUNT_MISMATCH"
    assert cpu < 0.5, f"{amount[:20]!r} cost {cpu:.2f}s of CPU"


@pytest.mark.gen_test(timeout=60)
async def test_json_number_constants_and_overflow(api):
    sid = await api.schedule()
    token, _ = await api.login()
    for raw, status in ((b'{"course_schedule_id": %d, "amount": NaN}', 400),
                        (b'{"course_schedule_id": %d, "amount": Infinity}', 400),
                        (b'{"course_schedule_id": %d, "amount": 1e999}', 422)):
        code, body, _ = await api.call("POST", ORDER, raw=raw % sid, token=token,
                                       headers={"Content-Type": "application/json"})
        assert code == status, (raw, body)


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/api/v1/admin/login"])
async def test_deeply_nested_json_is_a_400(api, path):
    code, body, cpu = await _timed(api, "POST", path, raw=b"[" * 60000, headers={"Content-Type": "application/json"})
    assert code == 400 and body["error"]["code"] == "INVALID_REQUEST"
    assert cpu < 0.5


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("reason", [[], {}, 7, None, "x" * 1000])
async def test_cancel_reason_of_the_wrong_type_is_a_400(api, reason):
    sid = await api.schedule()
    token, _ = await api.login()
    _, order = await api.order(token, sid)
    code, body, _ = await api.call("POST", f"/api/v1/payment/orders/{order['order_id']}/cancel", {"reason": reason},
                                   token=token)
    if reason is None:  # null means "not given": the default reason
        assert code == 400 or (code == 200 and body["status"] == "cancelled")
    else:
        assert code == 400 and body["error"]["field"] == "reason", body


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("starts_at", ["0001-01-01T00:00:00+08:00", "0001-01-01T00:00:00-23:59",
                                       "9999-12-31T23:59:59-23:59", "1900-01-01T00:00:00Z", "2026-13-01T00:00:00Z",
                                       "x" * 5000])
async def test_admin_start_times_out_of_range_are_a_400(api, starts_at):
    token = await api.admin_token()
    code, body, _ = await api.call("POST", "/api/v1/admin/schedules",
                                   {"title": "体验课", "starts_at": starts_at, "capacity": 3}, token=token)
    assert code == 400 and body["error"]["field"] == "starts_at", body


@pytest.mark.gen_test(timeout=60)
async def test_a_start_time_in_range_is_accepted(api):
    token = await api.admin_token()
    starts = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)).isoformat()
    code, body, _ = await api.call("POST", "/api/v1/admin/schedules",
                                   {"title": "体验课", "starts_at": starts, "capacity": 3}, token=token)
    assert code == 201, body


def _raw_post(port, path, body: bytes, chunked=False):
    """Send a POST over a raw socket and return the status line and body of the answer (the client keeps sending
    while the server answers, as a real one would)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {len(body)}\r\n\r\n"
        s.sendall(head.encode())
        try:
            if chunked:
                for i in range(0, len(body), 65536):
                    part = body[i:i + 65536]
                    s.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                s.sendall(b"0\r\n\r\n")
            else:
                s.sendall(body)
        except OSError:
            pass  # the server may close once it has answered and discarded enough
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer) < answer.index(b"\r\n\r\n") + 4 + 60:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, rest = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), rest


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("size, chunked", [(65537, False), (1 << 20, False), (8 << 20, False), (1 << 20, True),
                                           (40 << 20, False)])
async def test_a_body_over_the_limit_gets_413_not_a_dropped_connection(http_server, http_port, io_loop, size,
                                                                       chunked):
    status_line, body = await io_loop.run_in_executor(None, _raw_post, http_port, "/api/v1/auth/login",
                                                      b"{" + b" " * (size - 2) + b"}", chunked)
    assert status_line.startswith("HTTP/1.1 413"), status_line
    assert b"PAYLOAD_TOO_LARGE" in body


@pytest.mark.gen_test(timeout=60)
async def test_a_body_at_the_limit_is_read(api, settings):
    body = b'{"code": "' + b"a" * (settings.max_body_bytes - 12) + b'"}'
    assert len(body) == settings.max_body_bytes
    status, answer, _ = await api.call("POST", "/api/v1/auth/login", raw=body,
                                       headers={"Content-Type": "application/json"})
    assert status == 400 and answer["error"]["field"] == "code"  # read and refused for what it says, not its size
