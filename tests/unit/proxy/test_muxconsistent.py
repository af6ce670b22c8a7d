"""A consistent read through the multiplexer (``Multiplexer._consistent``): the probe of the
cloud's current version against the shared state's, the one test of an etcd restore that
a quiet cloud gives."""

from __future__ import annotations

from types import SimpleNamespace

from yurthub.kube.resources import builtin
from yurthub.proxy.mux import Multiplexer
from yurthub.proxy.muxstate import SharedState, make_obj

RT = builtin("", "v1", "services")
assert RT is not None


def svc(name: str, rv: int) -> object:
    return make_obj(RT, {"kind": "Service", "apiVersion": "v1",
                         "metadata": {"name": name, "namespace": "default",
                                      "resourceVersion": str(rv)}})


def consistent(registry, state: SharedState, probe) -> tuple[bool, list[str]]:
    """What ``_consistent`` says for a state and a probe, and whether it saw a restore."""
    restores: list[str] = []
    feed = SimpleNamespace(went_back=lambda: restores.append("relist"),
                           bookmark_due=lambda wait: False, stalled=lambda: False)
    shared = SimpleNamespace(key=("", "v1", "services"), state=state, feed=feed,
                             latest=SimpleNamespace(get=probe))
    return Multiplexer._consistent(SimpleNamespace(streams=registry), shared), restores


def test_an_event_that_lands_while_the_probe_is_out_is_no_restore(registry):
    # The probe is answered at 10, and a write's event (11) reaches the state before the
    # answer is compared: the state is past the cloud's answer without any restore.  That
    # was taken for one: every shared watch ended (kube-proxy, coredns relisted) and the
    # state listed again, at any consistent read that met a write.
    state = SharedState(RT, 1024)
    state.replace([svc("a", 10)], 10)

    def probe() -> int:
        state.apply("MODIFIED", svc("a", 11))
        return 10

    assert consistent(registry, state, probe) == (True, [])


def test_a_cloud_below_the_version_the_state_had_went_back(registry):
    state = SharedState(RT, 1024)
    state.replace([svc("a", 10)], 10)
    assert consistent(registry, state, lambda: 7) == (False, ["relist"])
