"""The test helpers: a sandbox in a ``with`` block, and one in a child process driven over its
control port with the same method names."""

from __future__ import annotations

import socket

import pytest
from sandbox_wire_helpers import request

from tests.fixtures.sandboxes import SandboxProcess, running


def test_running_context_manager():
    with running(nodes=1) as sb:
        assert request(sb.url, "GET", "/api/v1/nodes").json()["items"][0]["metadata"][
            "name"] == "node-0000"
        url = sb.url
    with pytest.raises(ConnectionRefusedError):
        request(url, "GET", "/version")


def test_sandbox_in_a_child_process(tmp_path):
    with SandboxProcess(nodes=2, pods_per_node=2, log_file=tmp_path / "sandbox.log") as sp:
        assert len(request(sp.url, "GET", "/api/v1/pods").json()["items"]) == 4
        created = sp.put({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "x", "namespace": "default"}})
        assert int(created["metadata"]["resourceVersion"]) == sp.resource_version
        sp.fail_next(1, 500, match="/configmaps")
        assert request(sp.url, "GET", "/api/v1/namespaces/default/configmaps").status == 500
        sp.offline()
        assert not sp.is_online
        host, port = sp.url.rsplit("//", 1)[1].split(":")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=5)
        sp.online()
        assert sp.delete("configmaps", "x", "default")["metadata"]["name"] == "x"
        assert sp.delete("configmaps", "x", "default") is None
        assert [r["status"] for r in sp.requests("/configmaps")] == [500]
        assert sp.open_watches == 0 and sp.compact() == sp.resource_version
    assert sp.proc.returncode == 0
    assert "GET /api/v1/pods 200" in (tmp_path / "sandbox.log").read_text()
