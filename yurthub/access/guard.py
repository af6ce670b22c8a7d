"""Who may use the hub, online and offline: the checks the API proxy runs on every request.

- Requests without Authorization use the hub's own credentials: only processes of
  ``allowed_users`` (and kubelet's user) may send them; others get 403.
- Writes to this node's Lease without Authorization come from kubelet's user only, so no
  other process can keep a node with a dead kubelet Ready.
- Offline, a request carrying a token is answered from the cache only when the cloud was
  seen to accept that token for that component and resource (401 for a token never seen,
  403 for one never seen allowed this); a request without one only with what the hub's own
  identity was seen allowed to read.
- Online, every answer that shows the cloud allowed a request is remembered (TokenMemory),
  and persisted with the cache every few seconds by a background thread.
"""

from __future__ import annotations

import logging
import pwd
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from yurthub.access.keys import (
    READ_VERBS,
    accepted,
    access_key,
    bearer_subject,
    client_authorization,
    component_key,
    forbidden_message,
    legacy_component,
    pod_component,
)
from yurthub.access.memory import TokenMemory
from yurthub.config import Config
from yurthub.connection import ENV_NODE_CERTIFICATE, Role, connection_of
from yurthub.errors import (
    ConfigError,
    Forbidden,
    ServiceUnavailable,
    StorageError,
    Unauthorized,
)
from yurthub.kube.requestinfo import RequestInfo
from yurthub.metrics import Metrics
from yurthub.threads import BackgroundThread

log = logging.getLogger(__name__)

MEMORY_FILE = "access"
PERSIST_INTERVAL = 10.0
LEASE_NAMESPACE = "kube-node-lease"
_LEASE_WRITES = frozenset({"create", "update", "patch", "delete"})


class Bookkeeping(Protocol):
    """Where the memory is kept (the cache store): a JSON document in a file of its own."""

    def read_bookkeeping(self, name: str) -> Any:
        """The document, None when absent; raises StorageError (unreadable) or ValueError
        (torn or damaged)."""

    def write_bookkeeping(self, name: str, doc: Any) -> None:
        """Replace the document atomically (0600); raises StorageError."""


@dataclass(frozen=True)
class Caller:
    """Who sent a request, as the hub can tell: the owner of its connection (``uid``, None
    when unknown; ``identified`` False when nobody is checked), its Authorization, the name
    in its User-Agent (``agent``) and its cache component."""

    uid: int | None
    identified: bool
    authorization: str
    agent: str
    component: str
    trusted: bool       # may use the hub's own credentials
    kubelet: bool       # kubelet, from kubelet's user


def resolve_users(users: Iterable[str]) -> tuple[set[int], list[str]]:
    """UIDs of ``users`` (names or numbers), and the names that are not users here."""
    uids, unknown = set(), []
    for user in users:
        if user.isdigit():
            uids.add(int(user))
            continue
        try:
            uids.add(pwd.getpwnam(user).pw_uid)
        except KeyError:
            unknown.append(user)
    return uids, unknown


def kubelet_uid(cfg: Config) -> int:
    """The UID of ``kubelet_user``; ConfigError when it is no user of this host."""
    uids, unknown = resolve_users([cfg.kubelet_user])
    if unknown:
        raise ConfigError(f"kubelet_user = {cfg.kubelet_user!r}: no such user on this host")
    return uids.pop()


class AccessGuard:
    """The checks of the module docstring; one per hub."""

    def __init__(self, cfg: Config, metrics: Metrics) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.identified = cfg.peer_lookup != "off"
        self.kubelet_uid = kubelet_uid(cfg)
        uids, unknown = resolve_users(cfg.allowed_users)
        if unknown:
            log.info("allowed_users: %s: not users on this host; ignored", ", ".join(unknown))
        self.trusted = frozenset(uids | {self.kubelet_uid})
        self.memory = TokenMemory(cfg.token_memory_ttl, cfg.token_memory_size)
        self._store: Bookkeeping | None = None
        self._keeper: MemoryKeeper | None = None
        self._warned_unidentified = False

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, store: Bookkeeping) -> None:
        """Load the memory kept with the cache, and keep it there from now on."""
        self._store = store
        try:
            doc = store.read_bookkeeping(MEMORY_FILE)
            if doc is not None:
                n = self.memory.load_doc(doc)
                log.info("token memory: %d token(s) the cloud accepted are honoured offline", n)
        except (StorageError, ValueError) as e:
            log.warning("token memory not loaded (%s): offline, only tokens accepted from now "
                        "on are honoured", e)
        self._keeper = MemoryKeeper(self)
        self._keeper.start()

    def stop(self) -> None:
        if self._keeper is not None:
            self._keeper.stop()
        self.persist()

    def persist(self) -> None:
        if self._store is None or not self.memory.dirty:
            return
        try:
            self._store.write_bookkeeping(MEMORY_FILE, self.memory.to_doc())
        except StorageError as e:
            self.memory.dirty = True
            log.warning("token memory not saved: %s", e)

    # -- who is asking -------------------------------------------------------------------------

    def caller(self, environ: dict[str, Any], agent: str) -> Caller:
        conn = connection_of(environ)
        authorization = client_authorization(environ)
        if conn is None or not conn.identified:
            if conn is None and self.identified and not self._warned_unidentified:
                self._warned_unidentified = True
                log.warning("requests arrive without the worker's connection facts (not "
                            "served by yurthub.worker?): every local process is trusted")
            return Caller(None, False, authorization, agent,
                          component_key(agent, None, False, self.trusted), True,
                          agent == "kubelet")
        if conn.role is Role.SECURE_PROXY:
            # A pod (no local UID): cached under "<agent>@pod", never in a node component's
            # place (a pod saying kubelet/1 is not kubelet), offline only what the cloud
            # allowed its token; the hub's credentials only for this node's own client
            # certificate (proxy/secure.py), which is the node itself: its bare name.
            node = bool(environ.get(ENV_NODE_CERTIFICATE))
            component = component_key(agent, None, False, self.trusted) if node \
                else pod_component(agent)
            return Caller(None, True, authorization, agent, component, node, False)
        uid = conn.uid
        trusted = uid is not None and uid in self.trusted
        return Caller(uid, True, authorization, agent,
                      component_key(agent, uid, True, self.trusted), trusted,
                      agent == "kubelet" and uid == self.kubelet_uid)

    # -- online and offline ---------------------------------------------------------------------

    def admit(self, caller: Caller, info: RequestInfo) -> None:
        """Raise Forbidden for what no cloud answer may decide: the hub's credentials used by
        a user not allowed them, the node's Lease written by another user than kubelet's."""
        if caller.authorization:
            return
        if not caller.trusted:
            self._refused("user-not-allowed")
            who = "an unknown user" if caller.uid is None else f"user {caller.uid}"
            raise Forbidden(f"yurthub: {who} may not use the hub's credentials; send your own "
                            "Authorization, or add the user to allowed_users")
        if caller.identified and caller.uid != self.kubelet_uid and self.is_node_lease(info) \
                and info.verb in _LEASE_WRITES:
            self._refused("lease-not-kubelet")
            raise Forbidden(f'leases.coordination.k8s.io "{self.cfg.node_name}" is forbidden: '
                            f"yurthub: only kubelet's user ({self.cfg.kubelet_user}) may write "
                            "this node's Lease through the hub",
                            details={"name": self.cfg.node_name,
                                     "group": "coordination.k8s.io", "kind": "leases"})

    def is_node_lease(self, info: RequestInfo) -> bool:
        return (info.is_resource_request and info.api_group == "coordination.k8s.io"
                and info.resource == "leases" and info.namespace == LEASE_NAMESPACE
                and info.name in ("", self.cfg.node_name))

    def check_offline(self, caller: Caller, info: RequestInfo) -> None:
        """Before the cache answers: raise Unauthorized or Forbidden as kube-apiserver would
        have, for what the cloud was never seen to allow this caller.  What it never allowed
        anyone is left to the cache to say (503) for the hub's own reads; a token's read of
        it is a 503 here, never the cache's answer under another key."""
        key = access_key(info)
        auth = caller.authorization
        if auth and not self.memory.knows(auth):
            self._refused("token-unknown")
            raise Unauthorized("Unauthorized")
        if not auth and info.verb not in READ_VERBS:
            return   # the node's own writes: the local proxy takes only those
        legacy = legacy_component(caller.component)
        if self.memory.allows(auth, caller.component, key) or (
                legacy and auth and self.memory.allows(auth, legacy, key)):
            return   # (a pod's grant a hub before "@pod" kept under its bare name: its own)
        if info.verb in READ_VERBS and not self.memory.anyone_allowed(caller.component, key):
            if not auth or not info.is_resource_request:
                return   # the hub's own reads, and discovery: the cache says what it holds
            # Nobody was seen allowed this key (a subresource, or a key the bounded memory
            # let go), yet the cache may hold its object under another key (a Secret read
            # by kubelet answers .../secrets/<name>/status): a token gets only what the
            # cloud allowed it, so the cache is not asked.
            self._refused("token-not-allowed")
            raise ServiceUnavailable(
                f"the cloud is unreachable and yurthub never saw it allow this token "
                f"{info.verb} {info.resource}"
                + (f"/{info.subresource}" if info.subresource else "")
                + "; retry when the cloud is back", details={"retryAfterSeconds": 5})
        if auth:
            self._refused("token-not-allowed")
            sub = bearer_subject(auth)
            who = f'User "{sub}"' if sub else "this token"
        else:
            self._refused("hub-not-allowed")
            who = "the hub's identity"
        raise Forbidden(forbidden_message(info, who) + ": yurthub never saw the cloud allow "
                        "this, and the cloud is unreachable", details=_details(info))

    def record(self, caller: Caller, info: RequestInfo, status: int) -> None:
        """An upstream answer arrived: remember what it shows the cloud allowed, and forget
        what it shows the cloud no longer allows: a token it does not accept any more (401:
        a deleted pod's or ServiceAccount's; but for a token not accepted for minutes, one
        401 may be the cloud failing to authenticate, see access/memory.py), a read it
        refuses now (403:
        a removed RoleBinding; a write's 403 may be an admission webhook's, which says
        nothing about the grant)."""
        if accepted(status):
            self.memory.remember(caller.authorization, caller.component, access_key(info))
        elif caller.authorization and status == 401:
            if self.memory.refused(caller.authorization):
                log.info("%s: the cloud refuses a token it once accepted: it is honoured for "
                         "nothing offline any more", caller.component or "-")
        elif caller.authorization and status == 403 and info.verb in READ_VERBS:
            self.memory.forget_key(caller.authorization, caller.component, access_key(info))

    def _refused(self, reason: str) -> None:
        self.metrics.requests_refused.labels(reason).inc()


def _details(info: RequestInfo) -> dict[str, Any]:
    if not info.is_resource_request:
        return {}
    out = {"group": info.api_group, "kind": info.resource}
    if info.name:
        out["name"] = info.name
    return out


class MemoryKeeper(BackgroundThread):
    """Writes the token memory to the cache when it changed, every few seconds."""

    name = "yurthub-access"

    def __init__(self, guard: AccessGuard, interval: float = PERSIST_INTERVAL) -> None:
        super().__init__()
        self.guard = guard
        self.interval = interval

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.guard.persist()
