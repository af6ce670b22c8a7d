"""The multiplexer's one list+watch of a resource, through the hub's own proxy, in-process.

design: the feed asks the proxy app directly (a WSGI call in this process, no socket) with
the User-Agent ``yurthub-multiplexer/<node>``, under the hub's own identity.  So its list
and watch take the path every request takes: to the cloud while it is healthy (and the
cache tees them: the shared state is the cache, one copy under the component
``yurthub-multiplexer``), from the cache while it is not, and after a restart without the
cloud the first list comes from the cache.  When the cloud goes away or comes back the
proxy ends the feed's watch (as it ends every client's) and the feed re-watches from the
state's resourceVersion, so local clients notice nothing.

A watch that ends or breaks is resumed from the last version the state holds (an event
torn mid-way is not applied and comes again); a 410 makes the feed list again, and the
state turns the difference into events.  Failures are retried with a capped backoff.

``Latest`` learns the cloud's current resourceVersion for a consistent read (a list without
a resourceVersion): a list with ``limit=1``, metadata only, straight to the cloud under the
hub's identity (not through the proxy: it must not be cached), shared by the clients that
ask at the same time.  A probe that cannot be sent (no healthy cloud) leaves the state to
answer; one the cloud answers without its version (``UNKNOWN``) leaves the read to the cloud.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlencode

from werkzeug.test import EnvironBuilder

from yurthub import upstream as up
from yurthub.config import MULTIPLEXER_AGENT
from yurthub.errors import DecodeError, YurthubError
from yurthub.kube.framing import ListParser, WatchFramer
from yurthub.kube.meta import rv_int
from yurthub.kube.resources import ResourceType
from yurthub.proxy.muxstate import SharedState, make_obj
from yurthub.threads import BackgroundThread

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]

# The feed's watch lasts 5-10 minutes, then is renewed (as client-go's reflector does).
WATCH_TIMEOUT = 300
MAX_BACKOFF = 10.0
STALL_SILENCE = 150.0  # silence that means a stalled watch before a bookmark cadence is known
# A cached copy still not whole after a list for its sake (the cache drops that list: one
# past max_list_bytes, say) is listed again after these many seconds, doubled each time
# up to the last: the cloud traffic the multiplexer saves is not spent on it every watch.
MEND_BACKOFF = (300.0, 3600.0)


class _Expired(Exception):
    """The upstream cannot resume from the state's version: list again."""


class _Failed(Exception):
    """A list or watch that did not work out; retried after a backoff."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class Feed(BackgroundThread):
    """Keeps one SharedState current with one list+watch of ``path`` (the collection URL)."""

    def __init__(self, app: WsgiApp, state: SharedState, path: str, node: str,
                 environ: dict[str, Any] | None = None,
                 copy_problem: Callable[[int | None], tuple[str, int]] | None = None
                 ) -> None:
        super().__init__()
        # Why the state's copy in the cache is no whole list that a list now would mend
        # ("" when it is, or when none would), asked before a watch (_mend), with the mark
        # it gave at the last list (proxy/mux.py).
        self.copy_problem = copy_problem
        self._mark: int | None = None
        self._mend_at = 0.0   # no list for the copy's sake before (monotonic)
        self._mend_gap = 0.0  # the wait after the next one (MEND_BACKOFF)
        self.environ = dict(environ or {})  # what the worker would say of a connection
        self.app = app
        self.state = state
        self.path = path
        self.user_agent = f"{MULTIPLEXER_AGENT}/{node or 'node'}"
        self.name = f"yurthub-mux-{state.rt.resource}"
        self.lists = 0     # complete lists taken (first + relists), for logs and tests
        self.watches = 0
        # Why the last list failed before the state had any ("" otherwise).  Until a list
        # works, clients' requests go the usual way instead of waiting for a shared state
        # that may not come: with their own credentials when the hub's identity may not
        # list the resource, from their own cached copy when the cloud is away and the
        # shared one was never made (a hub upgraded while offline).
        self.refused = ""
        # When the upstream watch last said anything (an event or a bookmark; its start
        # counts), and how far apart its last two bookmarks came: the apiserver's cadence,
        # against which a silence tells a stalled watch (``stalled``).
        self.watching = False
        self.heard_at = time.monotonic()
        self.bookmark_gap = 0.0
        self._bookmark_at = 0.0
        self._watch_at = 0.0
        # The cloud's version was seen below the state's (``went_back``): list again once
        # the watch (from a version the cloud no longer reaches) has been ended.
        self.relist_asked = False
        # A relist asked for by went_back has not succeeded yet (the cloud is told once).
        self.relist_due = False

    def run(self) -> None:
        backoff = 0.5
        relist = True
        while not self.stopping.is_set():
            try:
                if relist or self.relist_asked or not self.state.synced:
                    # (a list that fails is tried again: after a went_back the watch from the
                    # state's version would wait, silent, for versions the cloud lost)
                    relist = relist or self.relist_asked
                    self.relist_asked = False
                    self._list()
                    relist = False
                    self.relist_due = self.relist_asked
                else:
                    self._mend()
                self._watch()
                backoff = 0.5
            except _Expired as e:
                log.info("shared %s: %s; listing again", self.state.rt.resource, e)
                relist = True
            except (_Failed, YurthubError) as e:
                if self.stopping.is_set():
                    return
                log.warning("shared %s: %s; retrying in %.1fs", self.state.rt.resource, e,
                            backoff)
                if not self.state.synced:  # said first: the clients it wakes go elsewhere
                    self.refused = str(e)
                    self.state.wake()
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def wake(self) -> None:
        self.state.wake()

    def went_back(self) -> bool:
        """The cloud's current version is below the state's (etcd restored from a backup):
        its watch from the state's version waits, silent, for versions the cloud will give
        other changes.  The caller ends that watch; the feed then lists again.  False when
        that relist was asked for already and has not succeeded yet."""
        first = not self.relist_due
        self.relist_due = self.relist_asked = True
        return first

    def _mend(self) -> None:
        """Before a watch that does not follow a list: a list for the cache's sake when its
        copy is not whole.  The watch keeps the state current, not that copy: a list the
        cache could not take (a full disk, with room again since) was never taken again,
        and a restart without the cloud found nothing to serve.  The state is whole, so a
        failure (the cloud just went away) is left to the next time, and the watch goes on."""
        if self.copy_problem is None:
            return
        why, _ = self.copy_problem(self._mark)
        if not why:
            self._mend_at = self._mend_gap = 0.0
            return
        now = time.monotonic()
        if now < self._mend_at:
            return
        first, most = MEND_BACKOFF
        self._mend_gap = min(most, max(first, 2 * self._mend_gap))
        self._mend_at = now + self._mend_gap
        log.info("shared %s: %s; listing again (then not before %.0f s)",
                 self.state.rt.resource, why, self._mend_gap)
        try:
            self._list()
        except (_Failed, YurthubError) as e:
            log.info("shared %s: cannot list now (%s); watching on", self.state.rt.resource, e)

    def stalled(self) -> bool:
        """The watch has been silent for over twice the apiserver's bookmark cadence (it
        sends bookmarks to a watch that allows them, about once a minute in kube), or for
        STALL_SILENCE while no cadence is known yet."""
        if not self.watching:
            return False
        limit = 2 * self.bookmark_gap + 2.0 if self.bookmark_gap else STALL_SILENCE
        return time.monotonic() - self.heard_at > limit

    def bookmark_due(self, within: float) -> bool:
        """Whether the apiserver's next bookmark may come within ``within`` seconds (a
        consistent read may wait for it then): its bookmarks come that often, or, their
        cadence not known yet, the last one (or the watch's start) is that recent.
        kube-apiserver's come about once a minute: then, mostly, not."""
        if not self.watching:
            return False
        if self.bookmark_gap:
            return self.bookmark_gap <= within
        return time.monotonic() - (self._bookmark_at or self._watch_at) < within

    # -- one request through the proxy ------------------------------------------------------

    def _call(self, query: dict[str, str]) -> tuple[int, Iterator[bytes], Callable[[], None]]:
        qs = urlencode(query)
        env = EnvironBuilder(path=self.path, query_string=qs).get_environ()
        env["HTTP_USER_AGENT"] = self.user_agent
        env["HTTP_ACCEPT"] = "application/json"
        env.update(self.environ)
        # werkzeug's test environ gives the URI without its query; the proxy reads the URI.
        env["RAW_URI"] = env["REQUEST_URI"] = self.path + ("?" + qs if qs else "")
        got: list[int] = []

        def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
            got.append(int(status.split(" ", 1)[0]))

        body = self.app(env, start_response)
        close = getattr(body, "close", None)
        return got[0] if got else 500, iter(body), close if close is not None else _nothing

    # -- list -------------------------------------------------------------------------------

    def _list(self) -> None:
        if self.copy_problem is not None:
            self._mark = self.copy_problem(None)[1]  # setbacks from here on may be this list's
        status, chunks, close = self._call({})
        parser = ListParser()
        rt = self.state.rt
        objs = []
        try:
            if status != 200:
                raise _Failed(f"list answered {status}: {_text(chunks)}", status)
            for chunk in chunks:
                # Each item is kept as its bytes only: the decoded objects go as they come.
                objs += [make_obj(rt, _of_type(rt, it.obj), item=it.raw)
                         for it in parser.feed(chunk)]
            info = parser.close()
            if info.is_status:
                raise _Failed(f"list answered a Status: {info.status}")
            if (info.kind, info.api_version) != (rt.kind + "List", rt.group_version):
                version = info.api_version or "no apiVersion"
                raise DecodeError(f"a {info.kind or 'list'} ({version}) answered for "
                                  f"{rt.resource}")
            list_rv = info.resource_version_int
        except DecodeError as e:
            raise _Failed(f"unusable list: {e}") from e
        finally:
            close()
        before = self.state.rv if self.state.synced else 0
        made = self.state.replace(objs, list_rv)
        if list_rv < before:
            log.warning("shared %s: the cloud's resourceVersions went back from %d to %d "
                        "(etcd restored?): local watches end with 410 and list again",
                        self.state.rt.resource, before, list_rv)
        self.refused = ""
        self.lists += 1
        log.info("shared %s: listed %d object(s) at %d%s", self.state.rt.resource, len(objs),
                 list_rv, f" ({made} change(s) sent to local watches)" if made else "")

    # -- watch ------------------------------------------------------------------------------

    def _watch(self) -> None:
        state = self.state
        timeout = int(WATCH_TIMEOUT * (1 + random.random()))  # noqa: S311
        status, chunks, close = self._call({
            "watch": "true", "resourceVersion": str(state.rv), "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout)})
        framer = WatchFramer()
        self.watches += 1
        try:
            if status == 410:
                raise _Expired(f"watch from {state.rv} answered 410")
            if status != 200:
                raise _Failed(f"watch answered {status}: {_text(chunks)}")
            self.heard_at = self._watch_at = time.monotonic()
            self.watching = True
            for chunk in chunks:
                for ev in framer.feed(chunk):
                    self._event(ev.type, ev.raw, ev.obj)
                if self.stopping.is_set():
                    return
        except DecodeError as e:
            # A torn or garbled event is not applied: the next watch resumes before it.
            raise _Failed(f"watch stream unusable: {e}") from e
        finally:
            self.watching = False
            close()

    def _event(self, etype: str, raw: bytes, obj: dict[str, Any]) -> None:
        state = self.state
        self.heard_at = now = time.monotonic()
        if etype == "BOOKMARK":
            if self._bookmark_at:
                self.bookmark_gap = now - self._bookmark_at
            self._bookmark_at = now
            meta = obj.get("metadata")
            rv = meta.get("resourceVersion", "") if isinstance(meta, dict) else ""
            state.bookmark(rv_int(str(rv)))  # one without a version says nothing
            return
        if etype == "ERROR":
            if obj.get("code") == 410:
                raise _Expired(f"watch from {state.rv}: {obj.get('message', 'expired')}")
            raise _Failed(f"watch error: {obj.get('message', obj)}")
        state.apply(etype, make_obj(state.rt, _of_type(state.rt, obj), event=raw))


def _of_type(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """``obj``, when its type (if it says one) is ``rt``'s; else a DecodeError: the state
    would show it to every client as one of ``rt``'s objects."""
    kind, api_version = obj.get("kind", rt.kind), obj.get("apiVersion", rt.group_version)
    if (kind, api_version) != (rt.kind, rt.group_version):
        raise DecodeError(f"an object of kind {kind!r} ({api_version!r}) among {rt.kind}")
    return obj


PROBE_ACCEPT = ("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, "
                "application/json")
PROBE_BYTES = 1 << 20
PROBE_TIMEOUT = 5.0  # a cloud this slow to say its version: the state answers as it is
UNKNOWN = -1  # the cloud answered the probe, not with its version: it answers the read itself


class Latest:
    """The cloud's current resourceVersion of one collection (a consistent read's target).

    ``get()`` answers with a probe sent after it was called (a probe in flight when it was
    called may predate a write the caller saw: it is not enough), so callers at the same
    moment share one probe and the cloud sees one small list for a burst of them.
    """

    def __init__(self, upstream: Any, path: str, user_agent: str) -> None:
        self.upstream = upstream
        self.path = path
        self.user_agent = user_agent
        self._lock = threading.Lock()
        self._sent_at = 0.0
        self._rv: int | None = None
        self.probes = 0  # sent, for tests and logs

    def get(self) -> int | None:
        """The cloud's resourceVersion now; None when no healthy cloud could be asked (then
        the state is the newest there is); UNKNOWN when the cloud answered without it (an
        error Status, such as the 429 of its priority and fairness, or a body that says no
        version): the state cannot be shown current, so the cloud must answer the read."""
        asked = time.monotonic()
        with self._lock:
            if self._sent_at >= asked:
                return self._rv  # a probe sent after we asked has answered meanwhile
            self._sent_at = time.monotonic()
            self._rv = self._probe()
            return self._rv

    def _probe(self) -> int | None:
        servers = self.upstream.candidates()
        if not servers:
            return None  # offline: the state is the newest there is
        headers = {"Accept": PROBE_ACCEPT, "User-Agent": self.user_agent}
        self.probes += 1
        try:
            resp = self.upstream.send(servers[0], "GET", f"{self.path}?limit=1", headers,
                                      None, read_timeout=PROBE_TIMEOUT)
        except YurthubError as e:
            log.debug("%s: no current resourceVersion: %s", self.path, e)
            return None
        try:
            data = up.read_small(resp, PROBE_BYTES)
            if data is None:
                return UNKNOWN
            if resp.status != 200:
                log.debug("%s: limit=1 list answered %d", self.path, resp.status)
                return UNKNOWN
            meta = json.loads(data).get("metadata") or {}
            rv = rv_int(str(meta.get("resourceVersion", "")))
            return rv if rv > 0 else UNKNOWN
        except (YurthubError, ValueError, AttributeError) as e:
            # The cloud was there (it answered, or began to): not the offline case.
            log.debug("%s: no current resourceVersion: %s", self.path, e)
            return UNKNOWN


def _text(chunks: Iterator[bytes]) -> str:
    """A short description of an error body (its Status message when it has one)."""
    data = b"".join(chunks)[:4096]
    try:
        doc = json.loads(data)
        if isinstance(doc, dict) and doc.get("message"):
            return str(doc["message"])
    except ValueError:
        pass
    return data[:200].decode("utf-8", "replace")


def _nothing() -> None:
    return None
