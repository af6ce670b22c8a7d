"""yurthub's gunicorn worker: gthread's thread pool and request handling, with a connection
loop that idle or slow clients cannot freeze.

design: gunicorn's gthread worker hands every accepted connection to a pool thread that then
blocks reading the request head, so a few hundred idle TCP connections take every thread and
both ports stop answering (and with them kubelet's Lease).  This subclass of its
``ThreadWorker`` keeps gthread's pool and its ``handle_request`` (the WSGI call and the
response writing, the same on gunicorn 20.1 and 2x) and replaces the loop around them:

- The loop thread accepts, asks the kernel once which user owns the client's socket
  (``yurthub.peercred``), gives the connection a slot (``Admission``: per listener group,
  per UID, with a reserve for kubelet's UID) or refuses it with a 429 Status, and reads
  request heads itself, non-blocking, under a deadline (``header_timeout``, 408 after it;
  431 past ``MAX_HEAD``, kube-apiserver's 1 MiB; heads beyond 32 KiB share one budget, 429
  past it), then the request's body (``bodies``: within ``body_timeout`` of its head, 408
  after it; 413 past kube-apiserver's 3 MiB; ``Expect: 100-continue`` answered here), so a
  client sending it slowly holds no thread.  A TLS listener's sockets are wrapped here and
  their handshake is driven by the same loop, non-blocking, under the same deadline.
- Only a whole request goes to a thread, in one of three pools (``Lane``): the general one
  (``threads``), kubelet's node-Lease requests, and the hub server, so neither a flood of
  requests nor every thread held by watches keeps the Lease or healthz waiting.
- The thread (``serving.ThreadSide``, mixed in) parses the head with gunicorn's parser,
  reads the body with ``body_timeout`` per read, runs the app with the connection's facts
  in the environ (``yurthub.connection``), and sends the answer with ``send_timeout`` per
  write, the same for answers from the cache as for streamed upstream ones.  A body the
  app did not read is drained (up to 64 KiB) before the connection is kept alive; bytes
  read past the request (a pipelined next one) go back to the loop with it.
- Kept-alive connections wait in the loop, not in a thread, for ``keepalive`` seconds.

Extension points: a listener's role and TLS wrapper come from ``WorkerSettings.listeners``
(the app's ``worker_settings``); a request's pool is chosen in ``limits.lane_for``.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import logging
import os
import queue
import selectors
import socket
import ssl
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from yurthub.connection import ConnectionInfo
from yurthub.errors import PeerLookupError
from yurthub.peercred import PeerLookup, open_lookup, owner_of
from yurthub.worker import heartbeat, limits
from yurthub.worker.conn import Conn, Read, State
from yurthub.worker.limits import Admission, Lane
from yurthub.worker.serving import ThreadSide
from yurthub.worker.settings import ListenerSpec, WorkerSettings

log = logging.getLogger(__name__)

WORKER_BOOT_ERROR = 3    # gunicorn's arbiter stops when a worker exits with this
ACCEPT_BATCH = 64        # connections accepted per wake-up of a listener
WARN_EVERY = 10.0        # seconds between two warnings of the loop
# OpenSSL's reasons for a plain GET, POST, HEAD, PUT or CONNECT where a ClientHello was due
_PLAIN_HTTP = frozenset({"HTTP_REQUEST", "HTTPS_PROXY_REQUEST"})
LINGER_SECONDS = 5.0     # a refused client's request still arriving is dropped this long...
LINGER_BYTES = 8 << 20   # ...and this much at most, before the connection closes
REFUSED_HANDSHAKES = 64  # refused TLS connections handshaken at once to be told so


class ConnectionStats:
    """What the loop counts; read at scrape time by the app's metrics (``attach_worker``)."""

    def __init__(self) -> None:
        self.open: Counter[str] = Counter()        # by listener role
        self.refused: Counter[str] = Counter()     # by reason
        self.busy: Counter[str] = Counter()        # requests in a pool, by lane


class YurthubWorker(ThreadSide, ThreadWorker):
    """gthread with a connection loop that idle clients cannot freeze (see the module doc)."""

    sets_connection_facts = True   # connection.WORKER_SETS_CONNECTION: checked at boot

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tmp: Any = heartbeat.jump_proof(self.tmp)   # a clock jump is no hang
        self.settings = WorkerSettings()
        self.stats = ConnectionStats()
        self.lookup: PeerLookup | None = None
        # gthread's handle_request compares the number of kept-alive connections with
        # max_keepalived (20.1 calls them _keep, 2x keepalived_conns); the loop keeps its
        # own, bounded by Admission, so gthread's stay empty.
        self._keep: deque[Any] = deque()
        self.keepalived_conns: deque[Any] = deque()
        self._conns: dict[int, Conn] = {}
        self._deadlines: list[tuple[float, int, int, Conn]] = []
        self._tiebreak = itertools.count()
        self._ids = itertools.count(1)
        self._done: queue.SimpleQueue[tuple[Conn, bool, bytes]] = queue.SimpleQueue()
        self._local = threading.local()
        self._wake_r = self._wake_w = -1
        self._pools: dict[Lane, ThreadPoolExecutor] = {}
        self._admission = Admission(self.settings.limits, self.settings.kubelet_uid)
        self._listeners: list[tuple[Any, ListenerSpec]] = []
        self._warned = -WARN_EVERY
        self._heads = limits.HeadBudget()
        self._refusing = 0   # refused TLS connections in their handshake (outside the slots)
        # gunicorn's parser must take every head the loop accepts (up to MAX_HEAD, like
        # kube-apiserver), whatever the gunicorn settings say; its own refusals are HTML.
        for name, value in limits.PARSER_LIMITS.items():
            self.cfg.set(name, value)

    # -- start ------------------------------------------------------------------------------

    def get_thread_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self.cfg.threads, thread_name_prefix="yurthub-req")

    def load_wsgi(self) -> None:
        """After the app is loaded (before post_worker_init starts the hub): take the app's
        settings and open the peer lookup, or stop the worker with one line."""
        super().load_wsgi()
        app: Any = getattr(self, "wsgi", None)
        settings = getattr(app, "worker_settings", None)
        if isinstance(settings, WorkerSettings):
            self.settings = settings
        self._admission = Admission(self.settings.limits, self.settings.kubelet_uid)
        try:
            self.lookup = open_lookup(self.settings.peer_lookup)
        except PeerLookupError as e:
            log.critical("cannot start: %s (set peer_lookup = off to serve without knowing "
                         "who connects)", e)
            logging.shutdown()
            os._exit(WORKER_BOOT_ERROR)
        if self.lookup is None:
            log.warning("peer_lookup = off: every local process may use the hub's credentials")
        else:
            log.info("the owner of each connection is asked of the kernel (%s)",
                     self.lookup.name)
        attach = getattr(app, "attach_worker", None)
        if callable(attach):
            attach(self.stats)
        self._app = app
        self.wsgi = self._call_app

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.alive = False   # the signal wakes the loop through gunicorn's wakeup pipe

    def run(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.poller.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        self.poller.register(self.PIPE[0], selectors.EVENT_READ, self._on_signal)
        self._pools = {Lane.GENERAL: self.tpool,
                       Lane.LEASE: ThreadPoolExecutor(self.settings.lease_threads,
                                                      thread_name_prefix="yurthub-lease"),
                       Lane.HUB: ThreadPoolExecutor(self.settings.hub_threads,
                                                    thread_name_prefix="yurthub-hubsrv")}
        for listener in self.sockets:
            listener.setblocking(False)
            spec = self.settings.listener(listener.getsockname()[1])
            self._listeners.append((listener, spec))
            self.poller.register(listener, selectors.EVENT_READ, self._accepter(listener, spec))
        try:
            while self.alive:
                self.notify()
                self._tick(self._next_timeout())
                if not self.is_parent_alive():
                    break
            self._shutdown()
        finally:
            for pool in self._pools.values():
                pool.shutdown(wait=False)
            if self.lookup is not None:
                self.lookup.close()

    def _tick(self, timeout: float) -> None:
        try:
            events = self.poller.select(timeout)
        except OSError as e:
            if e.errno != errno.EINTR:
                raise
            events = []
        for key, mask in events:
            key.data(key.fileobj, mask)
        self._finish_done()
        self._expire(time.monotonic())

    def _next_timeout(self) -> float:
        if not self._deadlines:
            return 1.0
        return max(0.0, min(1.0, self._deadlines[0][0] - time.monotonic()))

    # -- accept -----------------------------------------------------------------------------

    def _accepter(self, listener: Any, spec: ListenerSpec) -> Any:
        server = listener.getsockname()

        def accept(_fileobj: Any, _mask: int) -> None:
            for _ in range(ACCEPT_BATCH):
                try:
                    sock, client = listener.accept()
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED,
                                       errno.EPROTO, errno.EINTR):
                        self._warn(f"accept on {spec.role.value}: {e}")   # EMFILE...
                    return
                self._accepted(sock, client, server, spec)
        return accept

    def _accepted(self, sock: socket.socket, client: Any, server: Any,
                  spec: ListenerSpec) -> None:
        sock.setblocking(False)
        uid: int | None = None
        if self.lookup is not None:
            try:
                uid = owner_of(self.lookup, sock)
            except PeerLookupError as e:
                # Fail closed: a connection whose owner cannot be learnt is not served.
                self.stats.refused["lookup-failed"] += 1
                self._warn(f"refusing a connection from {client}: {e}")
                sock.close()
                return
            except OSError:
                sock.close()   # why: reset before we looked (getpeername: ENOTCONN)
                return
        identified = self.lookup is not None
        info = ConnectionInfo(next(self._ids), spec.role, client, uid, identified,
                              time.monotonic(), tls=spec.wrap is not None)
        conn = Conn(sock, client, server, spec, info, self._heads)
        refused = self._admission.admit(spec.role, uid, identified)
        if refused is not None:
            self.stats.refused[refused] += 1
            log.debug("refusing a connection of user %s to %s: %s", uid, spec.role.value,
                      refused)
            answer = limits.too_many_connections(refused, uid)
            if spec.wrap is None:
                conn.send_quietly(answer)
            if spec.wrap is None or self._refusing >= REFUSED_HANDSHAKES:
                conn.close()   # (past the few handshakes: a close, which clients retry)
                return
            # The 429 in clear would reach a TLS client as a protocol error ("wrong version
            # number"), which client-go does not retry, where it retries a 429: the refusal
            # goes after the handshake, a few at a time, outside the slots.
            conn.refusal = answer
            self._refusing += 1
        else:
            self.stats.open[spec.role.value] += 1
            self._conns[id(conn)] = conn
        self._deadline(conn, time.monotonic() + self.settings.header_timeout)
        if spec.wrap is not None:
            try:
                conn.sock = spec.wrap(sock)
            except (OSError, ValueError) as e:
                log.warning("cannot set up TLS for %s: %s", client, e)
                self._close(conn, "handshake-failed")
                return
            conn.state = State.HANDSHAKE
            self._step_handshake(conn)
            return
        conn.state = State.HEAD
        self._watch(conn, selectors.EVENT_READ)

    def _warn(self, message: str) -> None:
        """A WARNING at most every 10 s: a condition that repeats must not flood the log."""
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY:
            self._warned = now
            log.warning("%s", message)

    # -- connections in the loop ------------------------------------------------------------

    def _watch(self, conn: Conn, events: int) -> None:
        if conn.registered == events:
            return
        if conn.registered:
            self.poller.modify(conn.sock, events, self._on_conn(conn))
        else:
            self.poller.register(conn.sock, events, self._on_conn(conn))
        conn.registered = events

    def _unwatch(self, conn: Conn) -> None:
        if conn.registered:
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass  # why: the socket was closed under us; the selector forgot it
            conn.registered = 0

    def _on_conn(self, conn: Conn) -> Any:
        def event(_fileobj: Any, _mask: int) -> None:
            if conn.state is State.HANDSHAKE:
                self._step_handshake(conn)
            elif conn.state is State.LINGER:
                if conn.discard(LINGER_BYTES):
                    self._close(conn, None)
            elif conn.state in (State.HEAD, State.IDLE):
                if conn.state is State.IDLE:
                    conn.state = State.HEAD
                    self._deadline(conn, time.monotonic() + self.settings.header_timeout)
                self._step_head(conn, conn.read_head())
        return event

    def _step_handshake(self, conn: Conn) -> None:
        try:
            step = conn.handshake()
        except (ssl.SSLError, OSError) as e:
            log.debug("TLS handshake with %s failed: %s", conn.client, e)
            if isinstance(e, ssl.SSLError) and e.reason in _PLAIN_HTTP:
                conn.send_plain_quietly(limits.plain_http_on_tls())
            self._close(conn, "handshake-failed")
            return
        if step is Read.COMPLETE and conn.refusal is not None:
            self._refuse(conn, conn.refusal, None)
        elif step is Read.COMPLETE:
            conn.state = State.HEAD
            self._step_head(conn, conn.read_head())
        else:
            self._watch(conn, selectors.EVENT_WRITE if step is Read.WANT_WRITE
                        else selectors.EVENT_READ)

    def _step_head(self, conn: Conn, result: Read) -> None:
        if result is Read.COMPLETE:
            self._unwatch(conn)
            self._submit(conn)
        elif result is Read.MORE:
            if conn.in_body and not conn.body_timed:
                # The body has its own deadline from the end of its head: a client sending
                # it a byte at a time holds a descriptor in the loop for that long, no thread.
                conn.body_timed = True
                self._deadline(conn, time.monotonic() + self.settings.body_timeout)
            self._watch(conn, selectors.EVENT_READ)
        elif result is Read.WANT_WRITE:
            self._watch(conn, selectors.EVENT_WRITE)
        elif result is Read.TOO_LARGE:
            self._refuse(conn, limits.head_too_large(), "header-too-large")
        elif result is Read.BODY_TOO_LARGE:
            self._refuse(conn, limits.body_too_large(), "body-too-large")
        elif result is Read.CROWDED:
            self._refuse(conn, limits.heads_crowded(), "large-heads")
        elif result is Read.TLS_HELLO:
            conn.send_quietly(limits.tls_on_plain_http())
            self._close(conn, None)
        else:
            self._close(conn, None)

    def _refuse(self, conn: Conn, answer: bytes, reason: str | None) -> None:
        """Answer a request refused while it still arrives, then close.  Closing a socket
        with unread bytes sends a reset, which makes the client drop the answer (a client
        sends its whole body before it reads): so its sending side is shut, and what it
        still sends is read and dropped for a moment first (nginx's lingering close)."""
        conn.send_quietly(answer)
        if reason is not None:
            self.stats.refused[reason] += 1
        conn.buf.clear()
        conn.release_head()
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn, None)
            return
        conn.state = State.LINGER
        self._deadline(conn, time.monotonic() + LINGER_SECONDS)
        self._watch(conn, selectors.EVENT_READ)

    def _deadline(self, conn: Conn, when: float) -> None:
        gen = conn.set_deadline(when)
        heapq.heappush(self._deadlines, (when, next(self._tiebreak), gen, conn))

    def _expire(self, now: float) -> None:
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            _, _, gen, conn = heapq.heappop(heap)
            if gen != conn.generation or conn.state in (State.BUSY, State.CLOSED):
                continue
            if conn.state is State.LINGER:
                self._close(conn, None)   # the refusal was sent; the client took too long
            elif conn.state is State.HEAD and conn.in_body:
                conn.send_quietly(limits.body_timeout(self.settings.body_timeout))
                self._close(conn, "body-timeout")
            elif conn.state is State.HEAD and (conn.buf or conn.info.requests == 0):
                conn.send_quietly(limits.head_timeout(self.settings.header_timeout))
                self._close(conn, "header-timeout")
            elif conn.state is State.HANDSHAKE:
                self._close(conn, "handshake-timeout")
            else:
                self._close(conn, None)   # an idle kept-alive connection: nothing to say

    def _close(self, conn: Conn, reason: str | None) -> None:
        if conn.state is State.CLOSED:
            return
        if reason is not None:
            self.stats.refused[reason] += 1
        self._unwatch(conn)
        conn.close()
        if conn.refusal is not None:
            self._refusing -= 1
        elif self._conns.pop(id(conn), None) is not None:
            info = conn.info
            self.stats.open[info.role.value] -= 1
            self._admission.release(info.role, info.uid, info.identified)

    # -- threads ----------------------------------------------------------------------------

    def _submit(self, conn: Conn) -> None:
        info = conn.info
        lane = limits.lane_for(info.role, conn.buf, info.uid, info.identified,
                               self.settings.kubelet_uid)
        conn.lane = lane
        conn.state = State.BUSY
        try:
            self._pools[lane].submit(self._job, conn)
        except RuntimeError:   # the pool is shutting down
            self._close(conn, None)
            return
        self.stats.busy[lane.value] += 1

    def _job(self, conn: Conn) -> None:
        keepalive, rest = False, b""
        try:
            keepalive, rest = self._serve(conn)
        finally:
            self._done.put((conn, keepalive, rest))
            try:
                os.write(self._wake_w, b"\0")
            except OSError:
                pass  # why: the pipe is full, so the loop is already due to wake up

    def _on_wake(self, _fileobj: Any, _mask: int) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except OSError:
            pass  # why: drained (EAGAIN)

    def _on_signal(self, _fileobj: Any, _mask: int) -> None:
        try:
            while os.read(self.PIPE[0], 4096):
                pass
        except OSError:
            pass  # why: drained (EAGAIN)

    def _finish_done(self) -> None:
        """Connections whose request is over: back to the loop (kept alive) or closed."""
        while True:
            try:
                conn, keepalive, rest = self._done.get_nowait()
            except queue.Empty:
                return
            if conn.lane is not None:
                self.stats.busy[conn.lane.value] -= 1
            conn.info.requests += 1
            conn.release_head()
            if not (keepalive and self.alive):
                self._close(conn, None)
                continue
            try:
                conn.sock.setblocking(False)
            except OSError:
                self._close(conn, None)
                continue
            result = conn.refill(rest)
            if result is Read.MORE and not conn.buf:
                conn.state = State.IDLE
                self._deadline(conn, time.monotonic() + self.cfg.keepalive)
                self._watch(conn, selectors.EVENT_READ)
            else:
                conn.state = State.HEAD
                self._deadline(conn, time.monotonic() + self.settings.header_timeout)
                self._step_head(conn, result)

    # -- stop -------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        """Stop accepting, close what waits in the loop, let requests in threads finish."""
        for listener, _spec in self._listeners:
            try:
                self.poller.unregister(listener)
            except (KeyError, ValueError):
                pass  # why: never registered
        for conn in list(self._conns.values()):
            if conn.state is not State.BUSY:
                self._close(conn, None)
        deadline = time.monotonic() + self.cfg.graceful_timeout
        while self._conns and time.monotonic() < deadline:
            self.notify()
            self._tick(min(1.0, max(0.0, deadline - time.monotonic())))
        for conn in list(self._conns.values()):
            self._close(conn, None)
        for listener, _spec in self._listeners:
            listener.close()


__all__ = ["ConnectionStats", "YurthubWorker"]
