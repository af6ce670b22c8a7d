"""Watches proxied to the cloud that wait for versions the cloud lost: ended with 410.

design: after etcd is restored from a backup without ``--bump-revision`` the cloud's
resourceVersions go back, and a watch resumed from a version of the lost past is a watch
"from the future": kube-apiserver accepts it and stays silent until its versions reach it
again (kubelet's pods watch would hear of no pod for hours).  etcd's documented restore
(``--bump-revision --mark-compacted``) makes such watches end with 410 so that their
clients list again; here the hub does the same when it has proof that the versions went
back: a quorum answer older than one seen before (a collection of the cache,
``CollectionWriter.on_went_back``), or the node Lease the health checker renews every
heartbeat answered at a lower version than its previous renewal (each renewal is a write:
its version is etcd's revision then, which only grows; after a restart the first
renewal is compared with the Lease the cache kept).  Only watches that are certainly
from the future end: proxied (source ``remote``), opened before the proof was asked for,
from a version above the cloud's at the proof.  A collection's proof speaks for its own
resource (another API server, an aggregated one, has versions of its own); the Lease's for
every resource of kube-apiserver's etcd, which is every one but Events (often kept in an
etcd of their own) as far as the hub can tell: an aggregated API's watch ended by mistake
merely lists again.  Shared watches (proxy/mux.py) follow their own state's rewind.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from yurthub.cache.manager import partial_metadata_base
from yurthub.proxy.streams import Reason, Stream, StreamRegistry

log = logging.getLogger(__name__)

LEASES = ("coordination.k8s.io", "leases")
EVENTS = {("", "events"), ("events.k8s.io", "events")}


def is_events(group: str, resource: str) -> bool:
    """Events: often kept in an etcd of their own, whose versions say nothing of the rest."""
    return (group, resource) in EVENTS


def watches_past(rv: int, asked_at: float, resource: tuple[str, str] | None
                 ) -> Callable[[Stream], bool]:
    """A predicate for StreamRegistry: the remote watches opened before ``asked_at`` (a
    monotonic time) from a resourceVersion above ``rv``, of ``resource`` (group, resource)
    or, with None, of any resource but Events."""
    def match(stream: Stream) -> bool:
        ctx = getattr(stream, "ctx", None)
        info = getattr(ctx, "info", None)
        if stream.source != "remote" or ctx is None or info is None or info.verb != "watch":
            return False
        key = (info.api_group, info.resource)
        if (key != resource) if resource is not None else is_events(*key):
            return False
        try:
            since = int(info.resource_version or 0)
        except ValueError:
            return False
        return since > rv and ctx.started < asked_at
    return match


class Rewinds:
    """Ends the proxied watches a proof of going back shows waiting for a lost past."""

    def __init__(self, streams: StreamRegistry) -> None:
        self.streams = streams
        self._lock = threading.Lock()
        self._lease_rv = 0  # the version of the hub's last Lease renewal

    def collection_went_back(self, group: str, resource: str, rv: int, asked_at: float
                             ) -> None:
        """A cached collection's (its group and resource) quorum answer at ``rv`` is below
        one it saw (the writer thread calls it: it must not block)."""
        base = partial_metadata_base(group)
        group = group if base is None else ("" if base == "core" else base)
        self._end(rv, asked_at, (group, resource), f"{resource} answered at {rv}")

    def lease_cached(self, rv: int) -> None:
        """The node Lease the cache kept from before this start is at ``rv``: the first
        renewal is compared with it (a restore while the hub was down, and kubelet's
        watches resumed after the restart from versions the cloud lost)."""
        with self._lock:
            if self._lease_rv == 0 and rv > 0:
                self._lease_rv = rv

    def lease_renewed(self, rv: int, asked_at: float) -> bool:
        """The health checker renewed the node Lease; the answer is at ``rv``, to a request
        sent at ``asked_at`` or later.  True when it proves the cloud went back."""
        with self._lock:
            before, self._lease_rv = self._lease_rv, rv
        if not 0 < rv < before:
            return False
        self._end(rv, asked_at, None, f"the node Lease renewed at {rv} after {before}")
        return True

    def _end(self, rv: int, asked_at: float, resource: tuple[str, str] | None,
             why: str) -> None:
        n = self.streams.interrupt_where(Reason.WENT_BACK, watches_past(rv, asked_at, resource))
        if n:
            log.warning("the cloud's resourceVersions went back (%s; etcd restored?): ended "
                        "%d watch(es) from versions it lost, with 410, so their clients list "
                        "again", why, n)
