"""Fixtures of the sandbox integration tests: kubectl and the Python client pointed at the
shared ``sandbox`` fixture (each with its own kubeconfig and cache under tmp_path)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from kubesandbox.server import Sandbox
from tests.fixtures.kubectl import KUBECTL


def kubectl_runner(sb: Sandbox, tmp_path: Path,
                   ) -> Callable[..., subprocess.CompletedProcess[str]]:
    kubeconfig = sb.write_kubeconfig(tmp_path / "kubeconfig")
    cache = tmp_path / "kube-cache"

    def run(*args: str, check: bool = True, timeout: float = 30,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, "--cache-dir", str(cache),
                            *args], capture_output=True, text=True, timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {r.stderr}")
        return r
    run.kubeconfig = kubeconfig  # type: ignore[attr-defined]
    run.cache = cache  # type: ignore[attr-defined]
    return run


@pytest.fixture
def kubectl(sandbox: Sandbox, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    return kubectl_runner(sandbox, tmp_path)


@pytest.fixture
def kube_api(sandbox: Sandbox) -> Iterator[client.ApiClient]:
    cfg = client.Configuration()
    cfg.host = sandbox.url
    api = client.ApiClient(cfg)
    yield api
    api.close()


@pytest.fixture
def core(kube_api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)
