"""The worker's pure decisions: connection slots, where a head ends, which pool serves a
request, and the answers it sends without the app."""

from __future__ import annotations

import json

import pytest

from yurthub.connection import Role
from yurthub.worker import limits
from yurthub.worker.limits import Admission, Lane
from yurthub.worker.settings import Limits, ListenerSpec, WorkerSettings

KUBELET = 0
LIM = Limits(max_connections=4, per_uid=2, kubelet_reserve=2, hub_max_connections=3,
             hub_per_uid=2)


def fill(adm: Admission, role: Role, uid: int | None, n: int, identified: bool = True) -> list:
    return [adm.admit(role, uid, identified) for _ in range(n)]


def test_each_user_gets_its_share_and_all_together_the_total():
    adm = Admission(LIM, KUBELET)
    assert fill(adm, Role.PROXY, 1000, 3) == [None, None, "uid-capacity"]
    assert fill(adm, Role.PROXY, 1001, 2) == [None, None]
    assert adm.admit(Role.PROXY, 1002, True) == "capacity"
    adm.release(Role.PROXY, 1000, True)
    assert adm.admit(Role.PROXY, 1002, True) is None


def test_kubelets_user_has_a_reserve_beyond_the_total_and_its_share():
    adm = Admission(LIM, KUBELET)
    fill(adm, Role.PROXY, 1000, 2)
    fill(adm, Role.PROXY, 1001, 2)
    assert adm.admit(Role.PROXY, 1002, True) == "capacity"
    assert fill(adm, Role.PROXY, KUBELET, 3) == [None, None, "capacity"]


def test_the_hub_server_has_slots_of_its_own():
    adm = Admission(LIM, KUBELET)
    fill(adm, Role.PROXY, 1000, 2)
    fill(adm, Role.PROXY, 1001, 2)
    assert fill(adm, Role.HUB_SERVER, 1000, 3) == [None, None, "uid-capacity"]
    assert adm.admit(Role.HUB_SERVER, 1001, True) is None
    assert adm.admit(Role.HUB_SERVER, 1002, True) == "capacity"


def test_the_secure_proxy_shares_the_proxy_slots():
    adm = Admission(LIM, KUBELET)
    fill(adm, Role.PROXY, 1000, 2)
    assert adm.admit(Role.SECURE_PROXY, 1000, True) == "uid-capacity"


def test_unknown_peers_share_one_share_and_without_lookup_only_the_total_counts():
    adm = Admission(LIM, KUBELET)
    assert fill(adm, Role.SECURE_PROXY, None, 3) == [None, None, "uid-capacity"]
    adm = Admission(LIM, KUBELET)
    assert fill(adm, Role.PROXY, None, 5, identified=False) == [None] * 4 + ["capacity"]


@pytest.mark.parametrize("chunks, end", [
    ([b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"], 27),
    ([b"GET / HTTP/1.1\r\nHost: x\r\n\r", b"\n"], 27),
    ([b"GET / HTTP/1.1\r\nHost: x\r\n", b"\r\nbody"], 27),
    ([b"GET / HTTP/1.1\r\n", b"Host: x\r\n"], -1),
])
def test_the_end_of_a_head_is_found_across_reads(chunks, end):
    buf, searched, found = bytearray(), 0, -1
    for c in chunks:
        buf += c
        found = limits.head_end(buf, searched)
        searched = len(buf)
    assert found == end


def test_empty_lines_before_a_request_are_skipped():
    buf = bytearray(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    limits.skip_empty_lines(buf)
    assert bytes(buf) == b"GET / HTTP/1.1\r\n\r\n"


LEASE = b"PUT /apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1?timeout=10s " \
    b"HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("role, head, uid, identified, lane", [
    (Role.HUB_SERVER, b"GET /v1/healthz HTTP/1.1\r\n\r\n", 1000, True, Lane.HUB),
    (Role.PROXY, LEASE, KUBELET, True, Lane.LEASE),
    (Role.PROXY, LEASE, 1000, True, Lane.GENERAL),        # not kubelet's user
    (Role.PROXY, LEASE, None, False, Lane.LEASE),         # nobody is checked
    (Role.PROXY, LEASE, None, True, Lane.GENERAL),        # an unknown peer
    (Role.PROXY, b"GET /api/v1/pods HTTP/1.1\r\n\r\n", KUBELET, True, Lane.GENERAL),
    (Role.PROXY, b"GET /apis/coordination.k8s.io/v1/leases HTTP/1.1\r\n\r\n", KUBELET, True,
     Lane.GENERAL),
    # Lists and watches of the node leases stream for minutes: they would hold the lane.
    (Role.PROXY, LEASE.replace(b"PUT", b"GET").replace(b"/n1?", b"?watch=true&"), KUBELET,
     True, Lane.GENERAL),
    (Role.PROXY, LEASE.replace(b"PUT", b"GET").replace(b"?timeout=10s", b"?watch=1"), KUBELET,
     True, Lane.GENERAL),
    (Role.PROXY, LEASE.replace(b"PUT", b"GET").replace(b"/n1?timeout=10s", b""), KUBELET,
     True, Lane.GENERAL),
    (Role.PROXY, LEASE.replace(b"/n1?", b"/n1/status?"), KUBELET, True, Lane.GENERAL),
    (Role.PROXY, LEASE.replace(b"PUT", b"GET").replace(b"?timeout=10s", b""), KUBELET,
     True, Lane.LEASE),
    (Role.PROXY, LEASE.replace(b"PUT", b"POST").replace(b"/n1?timeout=10s", b""), KUBELET,
     True, Lane.LEASE),                                   # kubelet creates its Lease
])
def test_which_pool_serves_a_request(role, head, uid, identified, lane):
    assert limits.lane_for(role, head, uid, identified, KUBELET) is lane


def _parse(answer: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert int(headers["Content-Length"]) == len(body)
    return int(lines[0].split()[1]), headers, json.loads(body)


@pytest.mark.parametrize("answer, code, reason", [
    (limits.too_many_connections("uid-capacity", 1000), 429, "TooManyRequests"),
    (limits.too_many_connections("capacity", None), 429, "TooManyRequests"),
    (limits.head_too_large(), 431, "RequestHeaderFieldsTooLarge"),
    (limits.head_timeout(10), 408, "Timeout"),
])
def test_answers_without_the_app_are_statuses_that_close(answer, code, reason):
    status, headers, body = _parse(answer)
    assert status == code and headers["Connection"] == "close"
    assert body["kind"] == "Status" and body["code"] == code and body["reason"] == reason
    assert body["message"].startswith("yurthub: ")


def test_too_many_connections_says_whose_and_when_to_retry():
    status, headers, body = _parse(limits.too_many_connections("uid-capacity", 1000))
    assert headers["Retry-After"] == "1" and "user 1000" in body["message"]


def test_an_unknown_port_is_a_plain_proxy_listener():
    s = WorkerSettings(listeners=(ListenerSpec(10267, Role.HUB_SERVER),))
    assert s.listener(10267).role is Role.HUB_SERVER
    assert s.listener(1).role is Role.PROXY and s.listener(1).wrap is None


def test_heads_beyond_the_small_size_share_one_budget():
    budget = limits.HeadBudget(limit=100)
    small = limits.SMALL_HEAD
    assert budget.charge(0, small) == 0 and budget.used == 0      # small heads cost nothing
    a = budget.charge(0, small + 60)
    assert a == 60 and budget.used == 60
    assert budget.charge(0, small + 50) is None and budget.used == 60   # no room: refused
    assert budget.charge(a, small + 90) == 90 and budget.used == 90     # one head grows
    assert budget.charge(90, small + 10) == 90                          # never shrinks by itself
    budget.release(90)
    assert budget.used == 0 and budget.charge(0, small + 50) == 50


def test_one_user_holds_at_most_half_of_the_budget():
    budget = limits.HeadBudget(limit=100)
    small = limits.SMALL_HEAD
    assert budget.charge(0, small + 40, "nobody") == 40
    assert budget.charge(0, small + 20, "nobody") is None     # past its half
    assert budget.charge(0, small + 50, "root") == 50          # the rest is everyone else's
    budget.release(40, "nobody")
    assert budget.charge(0, small + 50, "nobody") == 50
    assert budget.charge(0, small + 10, None) is None          # the budget is full
    budget.release(50, "root")
    assert budget.charge(0, small + 50, None) == 50            # not told apart: no half
    assert budget.per_owner == {"nobody": 50}


def test_the_parser_limits_take_what_the_loop_takes():
    # 0 is "no limit" for the request line in gunicorn 20.1 and 2x; a field is given a size
    # (0 means 8190 in 2x), the field count is both versions' maximum.
    assert limits.PARSER_LIMITS == {"limit_request_line": 0,
                                    "limit_request_field_size": limits.MAX_HEAD,
                                    "limit_request_fields": 32768}
    assert limits.MAX_HEAD == 1 << 20     # kube-apiserver's MaxHeaderBytes


def test_gunicorns_parse_errors_become_statuses():
    from gunicorn.http import errors

    from yurthub.worker.serving import parse_error
    assert parse_error(errors.LimitRequestHeaders("limit request headers fields")).code == 431
    assert parse_error(errors.LimitRequestLine(9000, 8190)).code == 414
    err = parse_error(errors.InvalidRequestLine("x" * 5000))
    assert err is not None and err.code == 400 and len(err.message) < 300
    assert parse_error(errors.InvalidHeaderName("Bad Name")).code == 400
    assert parse_error(RuntimeError("a bug")) is None
