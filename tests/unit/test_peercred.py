"""The owner of a loopback connection, asked of the kernel: netlink and /proc agree, a client
of another user is named by its UID, and a client that already closed is nobody."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator

import pytest

from yurthub import peercred
from yurthub.errors import PeerLookupError

AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
NOBODY = 65534


@pytest.fixture(params=["netlink", "proc"])
def lookup(request) -> Iterator[peercred.PeerLookup]:
    found = peercred.open_lookup(request.param)
    assert found is not None and found.name == request.param
    yield found
    found.close()


def _pair(family: int = socket.AF_INET, host: str = "127.0.0.1"):
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind((host, 0))
    listener.listen(4)
    client = socket.create_connection(listener.getsockname()[:2])
    server, _ = listener.accept()
    listener.close()
    return client, server


def test_a_client_of_this_process_is_our_own_user(lookup):
    client, server = _pair()
    with client, server:
        assert peercred.owner_of(lookup, server) == os.geteuid()


def test_ipv6_loopback(lookup):
    client, server = _pair(socket.AF_INET6, "::1")
    with client, server:
        assert peercred.owner_of(lookup, server) == os.geteuid()


def test_an_ipv4_client_of_a_dual_stack_listener(lookup):
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    listener.bind(("::", 0))
    listener.listen(1)
    with listener, socket.create_connection(("127.0.0.1", listener.getsockname()[1])):
        server, peer = listener.accept()
        with server:
            assert peer[0] == "::ffff:127.0.0.1"
            assert peercred.owner_of(lookup, server) == os.geteuid()


def test_a_client_of_another_user_is_named_by_its_uid(lookup):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    child = subprocess.Popen([*AS_NOBODY, "/usr/bin/python3", "-c",
                              "import socket, sys; s = socket.create_connection(('127.0.0.1', "
                              f"{port})); sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        listener.settimeout(20)
        server, _ = listener.accept()
        with server:
            assert peercred.owner_of(lookup, server) == NOBODY
            # Gone: the kernel keeps the closed socket a while, owned by no one (it reports
            # UID 0 for it); that must never pass for root.
            child.communicate(b"", timeout=20)
            assert peercred.owner_of(lookup, server) is None
    finally:
        child.kill()
        listener.close()


def test_no_such_socket_is_none(lookup):
    # A peer that is not in this network namespace looks exactly like this.
    assert lookup.owner(socket.AF_INET, ("127.0.0.1", 9), ("127.0.0.1", 1)) is None


def test_modes():
    assert peercred.open_lookup("off") is None
    auto = peercred.open_lookup("auto")
    assert auto is not None and auto.name == "netlink"
    auto.close()


def test_an_unreadable_proc_table_fails_closed(tmp_path):
    with pytest.raises(PeerLookupError, match="cannot read"):
        peercred.ProcLookup(str(tmp_path))


def test_proc_addresses_are_spelled_as_the_kernel_does():
    assert peercred._proc_address(socket.AF_INET, ("127.0.0.1", 10261)) == b"0100007F:2815"
    assert peercred._proc_address(socket.AF_INET6, ("::1", 80)) == \
        b"00000000000000000000000001000000:0050"


def test_where_binding_is_refused_the_self_test_asks_for_a_socket_that_cannot_exist(
        monkeypatch):
    # systemd's SocketBindDeny= refuses the self-test's bind of an ephemeral port.
    def refused(self, address):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(socket.socket, "bind", refused)
    for mode in ("netlink", "proc"):
        found = peercred.open_lookup(mode)
        assert found is not None and found.name == mode
        found.close()
