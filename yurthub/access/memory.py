"""What the cloud allowed, remembered for when it is away: per principal, the access keys it
was seen authorized for.

A principal is either a bearer token, known only by a salted hash (HMAC-SHA256 with a random
salt kept beside the memory; the token itself is never stored or logged), or the hub's own
identity (requests without Authorization).  A token is remembered until its JWT ``exp``, or,
when it is not a JWT with an expiry, ``ttl`` seconds after the cloud last accepted it; at
most ``max_tokens`` of them, least recently accepted forgotten first (``cachetools``), and
``max_keys`` access keys each.  The hub's own identity is remembered without an age bound
(its credentials are the node's and renew themselves) but with a count bound.

A 401 forgets a token the cloud accepted less than ``VERDICT_KEPT`` seconds ago at once.
kube-apiserver also answers 401 when it could not authenticate (its token webhook down or
timing out), but it keeps a webhook's verdict that long (``--authentication-token-webhook-
cache-ttl``, 2 min by default), so a token it accepted since cannot meet that outage: the 401
is a refusal (a deleted pod's or ServiceAccount's token, which its in-process authenticator
refuses at once).  So is any 401 to a ServiceAccount's token, which no webhook checks.  An
older token's 401 only puts it in doubt: a 2xx clears the doubt, a 401
``REFUSAL_WINDOW`` seconds or more after the first forgets it (a revoked token's client keeps
retrying: it is forgotten within a minute or two).  The doubt is kept in memory only.

The memory is a JSON document (``to_doc``/``load_doc``); the guard persists it with the
cache so that an offline restart keeps it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from cachetools import LRUCache, TLRUCache

from yurthub.access.keys import KEY_PART_MAX, AccessKey, bearer_expiry, bearer_subject

FORMAT = 1
VERDICT_KEPT = 120.0    # kube-apiserver's default webhook token cache TTL
# A token refused (401) again this long after its first refusal, with no 2xx between, is
# forgotten: longer than a token webhook's restart, shorter than kube-apiserver's own cache.
REFUSAL_WINDOW = 60.0
Entry = tuple[str, AccessKey]     # (component, key)


class Grants:
    """The access keys one token was seen allowed, each with when the cloud last confirmed
    it (``clock`` time; 0 for a grant loaded from the persisted memory), until when the
    token is honoured, and when the cloud last accepted it (0: before this start)."""

    __slots__ = ("accepted", "expires", "keys")

    def __init__(self, expires: float, max_keys: int) -> None:
        self.expires = expires
        self.accepted = 0.0
        self.keys: LRUCache[Entry, float] = LRUCache(max_keys)


class TokenMemory:
    """Thread-safe; every method is cheap (a hash and a few dictionary lookups)."""

    def __init__(self, ttl: float, max_tokens: int, *, max_keys: int = 512,
                 max_hub_keys: int = 16384, clock: Callable[[], float] = time.time,
                 salt: bytes | None = None) -> None:
        self.ttl = ttl
        self.max_keys = max_keys
        self.clock = clock
        self._salt = salt or os.urandom(32)
        self._tokens: TLRUCache[str, Grants] = TLRUCache(
            maxsize=max_tokens, ttu=lambda _k, g, _now: g.expires, timer=clock)
        self._hub: LRUCache[Entry, bool] = LRUCache(max_hub_keys)
        self._doubted: LRUCache[str, float] = LRUCache(max_tokens)  # hash: first 401
        # Everything any principal was seen allowed: the cache can hold only that, so a key
        # nobody was ever allowed is "not cached", not "forbidden".
        self._any: LRUCache[Entry, bool] = LRUCache(2 * max_hub_keys)
        self._lock = threading.Lock()
        self.dirty = False
        # False until the hub's identity was seen allowed anything (online) or a memory was
        # loaded: a hub upgraded from a version without this memory must not start offline
        # refusing what kubelet needs.
        self.hub_known = False

    def _hash(self, authorization: str) -> str:
        return hmac.new(self._salt, authorization.strip().encode("utf-8", "replace"),
                        hashlib.sha256).hexdigest()

    # -- online: the cloud allowed something -------------------------------------------------

    def remember(self, authorization: str, component: str, key: AccessKey) -> None:
        """The cloud allowed ``key`` to ``authorization`` ("" for the hub's own identity).

        A key with a part longer than any name (``AccessKey.storable``) is not kept: it
        names nothing the cache holds, and a client repeating 1 MiB paths the cloud answers
        404 would otherwise fill the memory and its file.  The token is known all the same.
        """
        entry = (component, key)
        keep = key.storable() and len(component) <= KEY_PART_MAX
        with self._lock:
            if keep:
                self._keep(self._any, entry)
            if not authorization:
                if keep:
                    self._keep(self._hub, entry)
                self.hub_known = True
                return
            now = self.clock()
            exp = bearer_expiry(authorization)
            expires = exp if exp is not None else now + self.ttl
            if expires <= now:
                return
            h = self._hash(authorization)
            self._doubted.pop(h, None)   # accepted: an earlier 401 was the cloud's blip
            grants = self._tokens.get(h)
            if grants is None:
                grants = Grants(expires, self.max_keys)
                self.dirty = True
            elif exp is None and expires - grants.expires > self.ttl / 100:
                self.dirty = True   # why: persist a moved expiry, not every request's
            grants.expires = max(grants.expires, expires) if exp is None else expires
            grants.accepted = now
            if keep:
                self._keep(grants.keys, entry, now)
            self._tokens[h] = grants   # re-inserted: its expiry and recency are renewed

    def inherit(self, old: str, new: str) -> bool:
        """``new`` replaces ``old``: the cloud issued both for the same pod, ServiceAccount
        and audiences (kubelet's TokenRequests, proxy/tokens.py), so it allows ``new``
        what it allowed ``old`` (kube-apiserver authorizes the ServiceAccount, not the
        token).  kubelet rotates a pod's token about hourly: without this the pod's next
        request offline, with a token the cloud had no occasion to accept yet, is a 401.
        The grants come as confirmed long ago (0: the shared state asks the cloud again
        before it relies on them) and until ``new``'s own expiry.  True when there was
        anything to inherit."""
        if not old or not new or old == new:
            return False
        with self._lock:
            was = self._tokens.get(self._hash(old))
            if was is None:
                return False
            now = self.clock()
            exp = bearer_expiry(new)
            expires = exp if exp is not None else now + self.ttl
            if expires <= now:
                return False
            h = self._hash(new)
            grants = self._tokens.get(h)
            if grants is None:
                grants = Grants(expires, self.max_keys)
            for entry in list(was.keys.keys()):
                if entry not in grants.keys:
                    grants.keys[entry] = 0.0
            self._tokens[h] = grants
            self.dirty = True
            return True

    def _keep(self, seen: LRUCache[Entry, Any], entry: Entry, value: Any = True) -> None:
        if entry not in seen:
            self.dirty = True
        seen[entry] = value   # (again: its recency is renewed)

    def confirmed_at(self, authorization: str, component: str, key: AccessKey) -> float | None:
        """When the cloud last confirmed ``key`` (or a list covering it) to this token: the
        newest of those times, 0 for a grant only loaded from disk; None when it has none."""
        with self._lock:
            grants = self._tokens.get(self._hash(authorization))
            if grants is None:
                return None
            times = [t for k in key.covering()
                     if (t := grants.keys.get((component, k))) is not None]
            return max(times) if times else None

    # -- online: the cloud refused something it once allowed ------------------------------------

    def refused(self, authorization: str) -> bool:
        """The cloud answered 401 to this token: True when it is now forgotten (accepted less
        than ``VERDICT_KEPT`` ago, or refused ``REFUSAL_WINDOW`` or more after a first 401
        with no 2xx between), False while it is only in doubt."""
        h = self._hash(authorization)
        with self._lock:
            grants = self._tokens.get(h)
            if grants is None:
                self._doubted.pop(h, None)
                return False
            now = self.clock()
            first = self._doubted.get(h)
            if now - grants.accepted >= VERDICT_KEPT and not _in_process(authorization):
                if first is None or first > now:   # (later: the clock was set back)
                    self._doubted[h] = now
                    return False
                if now - first < REFUSAL_WINDOW:
                    return False
        self.forget(authorization)
        return True

    def forget(self, authorization: str) -> None:
        """The cloud no longer accepts this token: it is honoured for nothing."""
        h = self._hash(authorization)
        with self._lock:
            self._doubted.pop(h, None)
            if self._tokens.pop(h, None) is not None:
                self.dirty = True

    def forget_key(self, authorization: str, component: str, key: AccessKey) -> None:
        """The cloud refused ``key`` to this token (403): neither that grant nor a list that
        would cover it is honoured any more (a list of all namespaces allows a list of each
        one, a list allows a get offline: what the cloud refused now must not be answered
        from the cache through a broader grant)."""
        drop = key.covering()
        with self._lock:
            grants = self._tokens.get(self._hash(authorization))
            if grants is None:
                return
            for k in drop:
                if grants.keys.pop((component, k), None) is not None:
                    self.dirty = True

    # -- offline: may the cache answer? -------------------------------------------------------

    def knows(self, authorization: str) -> bool:
        """True when the cloud accepted this token (for anything) and it is still honoured."""
        with self._lock:
            return self._tokens.get(self._hash(authorization)) is not None

    def allows(self, authorization: str, component: str, key: AccessKey) -> bool:
        """True when the cloud allowed ``key`` (or a list covering it) to this principal."""
        with self._lock:
            if authorization:
                grants = self._tokens.get(self._hash(authorization))
                if grants is None:
                    return False
                seen: Any = grants.keys
            else:
                if not self.hub_known:
                    return True
                seen = self._hub
            return any((component, k) in seen for k in key.covering())

    def anyone_allowed(self, component: str, key: AccessKey) -> bool:
        """True when some principal was seen allowed ``key`` (or a list covering it) for
        ``component``: only then can the cache hold an answer to refuse."""
        with self._lock:
            return any((component, k) in self._any for k in key.covering())

    # -- persistence --------------------------------------------------------------------------

    def to_doc(self) -> dict[str, Any]:
        with self._lock:
            self._tokens.expire()
            tokens = [[h, g.expires, [[c, *k] for c, k in g.keys.keys()]]
                      for h, g in self._tokens.items()]
            hub = [[c, *k] for c, k in self._hub.keys()]
            anyone = [[c, *k] for c, k in self._any.keys()]
            self.dirty = False
            return {"format": FORMAT, "salt": self._salt.hex(), "tokens": tokens, "hub": hub,
                    "any": anyone, "hub_known": self.hub_known}

    def load_doc(self, doc: Any) -> int:
        """Take a persisted memory; returns how many tokens it held.  ValueError when the
        document is not one (it is then ignored: the memory starts empty)."""
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("not a token memory document")
        try:
            salt = bytes.fromhex(doc["salt"])
            tokens = [(str(h), float(exp), [_entry(e) for e in entries])
                      for h, exp, entries in doc["tokens"]]
            hub = [_entry(e) for e in doc["hub"]]
            anyone = [_entry(e) for e in doc.get("any", [])]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"damaged token memory: {e}") from None
        with self._lock:
            self._salt = salt
            self._tokens.clear()
            now = self.clock()
            for h, exp, entries in tokens:
                if exp <= now:
                    continue
                grants = Grants(exp, self.max_keys)
                for entry in entries:
                    grants.keys[entry] = 0.0   # (confirmed before this start: long ago)
                self._tokens[h] = grants
            self._hub.clear()
            for entry in hub:
                self._hub[entry] = True
            self._any.clear()
            for entry in anyone:
                self._any[entry] = True
            self.hub_known = bool(doc.get("hub_known")) or bool(hub)
            self.dirty = False
            return len(self._tokens)


def _entry(raw: Any) -> Entry:
    if not isinstance(raw, list) or len(raw) != 7 or not all(isinstance(x, str) for x in raw):
        raise ValueError("bad access key")
    return raw[0], AccessKey(*raw[1:])


def _in_process(authorization: str) -> bool:
    """A ServiceAccount's token (its ``sub``, read unverified): kube-apiserver checks it
    itself, before any webhook, so its 401 is a verdict whatever the token's age.  A forged
    claim can only make its own token forgotten sooner."""
    return bearer_subject(authorization).startswith("system:serviceaccount:")
