"""A consistent read of the multiplexer while its upstream watch goes on (mux._consistent).

Found under a 5-client churn through a real hub: "shared endpointslices: at 398, past the
cloud's 397 (etcd restored?); listing again" — the probe of the cloud's version was sent at
397, the state's watch brought 398 while it was on its way, and a cloud that had not gone
back was taken for an etcd restore: its upstream watch ended and the whole collection was
listed again (the traffic the multiplexer exists to save), and the read went to the cloud.
"""

from __future__ import annotations

from typing import Any

from yurthub import config
from yurthub.kube.resources import builtin
from yurthub.metrics import Metrics
from yurthub.proxy.mux import Multiplexer, Shared
from yurthub.proxy.muxstate import SharedState, make_obj

SVC = builtin("", "v1", "services")


def svc(name: str, rv: int) -> Any:
    assert SVC is not None
    return make_obj(SVC, {"metadata": {"name": name, "namespace": "default",
                                       "resourceVersion": str(rv)}})


class Feed:
    def __init__(self) -> None:
        self.went_back_asked = 0

    def went_back(self) -> None:
        self.went_back_asked += 1

    def bookmark_due(self, within: float) -> bool:
        return False

    def stalled(self) -> bool:
        return False


class Probe:
    """The cloud's version as a probe sent now reads it; ``meanwhile`` runs while the
    answer is on its way."""

    def __init__(self, rv: int, meanwhile: Any = None) -> None:
        self.rv = rv
        self.meanwhile = meanwhile

    def get(self) -> int:
        if self.meanwhile is not None:
            self.meanwhile()
        return self.rv


def multiplexer(registry: Any) -> Multiplexer:
    cfg = config.load(None, {"node_name": "node-a"})
    return Multiplexer(cfg, registry, None, Metrics())  # type: ignore[arg-type]


def test_a_change_that_passes_the_probe_on_its_way_is_no_etcd_restore(registry):
    assert SVC is not None
    state = SharedState(SVC, 100)
    state.replace([svc("a", 390)], 397)
    feed = Feed()
    # The probe reads 397; the state's watch applies 398 before its answer is back.
    probe = Probe(397, meanwhile=lambda: state.apply("MODIFIED", svc("a", 398)))
    shared = Shared("/v1/services", state, feed, probe)  # type: ignore[arg-type]
    assert multiplexer(registry)._consistent(shared) is True  # the state holds 397: answers
    assert feed.went_back_asked == 0
    assert state.rv == 398


def test_a_cloud_below_what_the_state_held_before_the_probe_went_back(registry):
    assert SVC is not None
    state = SharedState(SVC, 100)
    state.replace([svc("a", 390)], 397)
    feed = Feed()
    shared = Shared("/v1/services", state, feed, Probe(12))  # type: ignore[arg-type]
    assert multiplexer(registry)._consistent(shared) is False  # the cloud answers it
    assert feed.went_back_asked == 1
