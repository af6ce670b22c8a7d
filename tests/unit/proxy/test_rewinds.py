"""Proxied watches from versions the cloud lost end when the hub has proof it went back."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from yurthub.kube.requestinfo import RequestInfo, parse_request_info
from yurthub.proxy.rewinds import Rewinds
from yurthub.proxy.streams import Reason, StreamRegistry


@dataclass
class Ctx:
    info: RequestInfo
    started: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class Watch:
    """A proxied (or another source's) watch as the registry holds it."""

    ctx: Ctx
    source: str = "remote"
    ended: Reason | None = None

    def interrupt(self, reason: Reason) -> None:
        self.ended = reason


def watch(registry: StreamRegistry, path: str, rv: str, source: str = "remote") -> Watch:
    w = Watch(Ctx(parse_request_info("GET", path, f"watch=true&resourceVersion={rv}")),
              source=source)
    registry.add(w)
    return w


def test_a_lease_renewed_at_a_lower_version_ends_the_watches_from_the_lost_past(registry):
    rewinds = Rewinds(registry)
    assert not rewinds.lease_renewed(5000, time.monotonic())  # the heartbeat before the restore
    pods = watch(registry, "/api/v1/pods", "4990")           # kubelet's, resumed
    cms = watch(registry, "/api/v1/namespaces/a/configmaps", "4000")
    low = watch(registry, "/api/v1/pods", "90")              # from the restored cloud
    events = watch(registry, "/api/v1/events", "4990")       # another etcd, maybe
    shared = watch(registry, "/api/v1/services", "4990", source="shared")
    assert not rewinds.lease_renewed(5010, time.monotonic())  # versions that grow prove nothing
    assert pods.ended is None
    assert rewinds.lease_renewed(100, time.monotonic())  # after the restore: the versions went back
    assert pods.ended is cms.ended is Reason.WENT_BACK
    assert low.ended is events.ended is shared.ended is None


def test_the_lease_the_cache_kept_is_the_first_renewals_baseline(registry):
    """After a restart, the Lease cached before it speaks for the past; a renewal already
    seen in this run is not replaced by it."""
    rewinds = Rewinds(registry)
    rewinds.lease_cached(5000)
    pods = watch(registry, "/api/v1/pods", "4990")
    assert rewinds.lease_renewed(100, time.monotonic())
    assert pods.ended is Reason.WENT_BACK
    rewinds.lease_cached(9000)  # too late: the renewal at 100 is the baseline now
    assert not rewinds.lease_renewed(120, time.monotonic())


def test_a_collections_proof_ends_its_own_resources_watches(registry):
    rewinds = Rewinds(registry)
    pods = watch(registry, "/api/v1/pods", "4990")
    nodes = watch(registry, "/api/v1/nodes", "4990")
    rewinds.collection_went_back("", "pods", 100, time.monotonic())
    assert pods.ended is Reason.WENT_BACK
    assert nodes.ended is None


def test_a_watch_opened_after_the_proof_was_asked_for_goes_on(registry):
    rewinds = Rewinds(registry)
    asked_at = time.monotonic()
    pods = watch(registry, "/api/v1/pods", "4990")
    pods.ctx.started = asked_at + 1
    rewinds.collection_went_back("", "pods", 100, asked_at)
    assert pods.ended is None
