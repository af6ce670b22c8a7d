"""Who is at the other end of a loopback TCP connection: the owner UID the kernel records for
the client's socket, asked once per connection, at accept time.

design: the client's socket is the one whose local address is our peer's and whose remote
address is ours.  ``sock_diag`` (``NETLINK_SOCK_DIAG``, ``SOCK_DIAG_BY_FAMILY`` without
``NLM_F_DUMP``) finds exactly that socket in the kernel's hash table and answers with its
``inet_diag_msg``, whose ``idiag_uid`` is the UID of the process that created it: one
request, one reply, no scan.  Where netlink is refused, ``/proc/self/net/tcp{,6}`` holds the
same UID column, read line by line (slower: it lists every socket of the network
namespace).  A peer in another network namespace (a pod reaching a non-loopback listener)
has no socket here: its UID is None.  Nothing here knows about users or policy.
"""

from __future__ import annotations

import errno
import ipaddress
import itertools
import logging
import os
import socket
import struct
import threading
from typing import Protocol

from yurthub.errors import PeerLookupError

log = logging.getLogger(__name__)

MODES = ("auto", "netlink", "proc", "off")

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR = 2
NLM_F_REQUEST = 1
_NOCOOKIE = 0xFFFFFFFF
_ALL_STATES = 0xFFFFFFFF

_NLMSGHDR = struct.Struct("=IHHII")                  # len, type, flags, seq, pid
# inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid:
# sport, dport (big-endian), src[16], dst[16], if, cookie[2].
_REQ = struct.Struct("=BBBBI")
_SOCKID = struct.Struct("!HH16s16s")
_SOCKID_TAIL = struct.Struct("=III")
# inet_diag_msg: family, state, timer, retrans, sockid (48 bytes), expires, rqueue, wqueue,
# uid, inode.
_UID_OFFSET = 4 + 48 + 12
_MSG_MIN = _UID_OFFSET + 8

Address = tuple[str, int]


class PeerLookup(Protocol):
    """How the owner of a connection's client socket is found."""

    name: str

    def owner(self, family: int, local: Address, peer: Address) -> int | None:
        """The UID owning the socket at ``peer`` connected to ``local``, or None when no
        process holds such a socket in this network namespace: a remote peer, or a client
        that already closed its end (the kernel then reports UID 0 for a socket no one owns).

        Raises PeerLookupError when the kernel could not be asked.
        """

    def close(self) -> None:
        """Release the descriptor the lookup holds."""


def owner_of(lookup: PeerLookup, sock: socket.socket) -> int | None:
    """The UID owning the client end of accepted socket ``sock`` (see PeerLookup.owner)."""
    local, peer = sock.getsockname(), sock.getpeername()
    return lookup.owner(sock.family, (local[0], local[1]), (peer[0], peer[1]))


def _packed(family: int, host: str) -> bytes:
    return socket.inet_pton(family, host).ljust(16, b"\0")


def _unmapped(family: int, local: Address, peer: Address) -> tuple[int, Address, Address]:
    """An IPv4 client seen on a dual-stack IPv6 listener (``::ffff:a.b.c.d``) owns an IPv4
    socket: ask for that one."""
    if family == socket.AF_INET6:
        lo, pe = ipaddress.IPv6Address(local[0]), ipaddress.IPv6Address(peer[0])
        if lo.ipv4_mapped is not None and pe.ipv4_mapped is not None:
            return socket.AF_INET, (str(lo.ipv4_mapped), local[1]), (str(pe.ipv4_mapped),
                                                                      peer[1])
    return family, local, peer


class NetlinkLookup:
    """sock_diag over a NETLINK_SOCK_DIAG socket (one per lookup object; thread-safe)."""

    name = "netlink"

    def __init__(self) -> None:
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC,
                                       NETLINK_SOCK_DIAG)
            self._sock.settimeout(1.0)
        except (OSError, AttributeError) as e:
            raise PeerLookupError(f"netlink sock_diag is not available: {_why(e)}") from None
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def owner(self, family: int, local: Address, peer: Address) -> int | None:
        family, local, peer = _unmapped(family, local, peer)
        # The client's socket: its source is our peer, its destination is us.
        sockid = _SOCKID.pack(peer[1], local[1], _packed(family, peer[0]),
                              _packed(family, local[0])) + _SOCKID_TAIL.pack(0, _NOCOOKIE,
                                                                             _NOCOOKIE)
        body = _REQ.pack(family, socket.IPPROTO_TCP, 0, 0, _ALL_STATES) + sockid
        with self._lock:
            seq = next(self._seq)
            msg = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY,
                                 NLM_F_REQUEST, seq, 0) + body
            try:
                self._sock.send(msg)
                while True:
                    data = self._sock.recv(4096)
                    if len(data) < _NLMSGHDR.size:
                        raise PeerLookupError("sock_diag: short netlink reply")
                    length, mtype, _flags, rseq, _pid = _NLMSGHDR.unpack_from(data)
                    if rseq == seq:
                        break
                    # why: a reply to an earlier request that timed out; skip it.
            except OSError as e:
                raise PeerLookupError(f"sock_diag: {_why(e)}") from None
        if mtype == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, _NLMSGHDR.size)
            if -err == errno.ENOENT:
                return None
            raise PeerLookupError(f"sock_diag: {os.strerror(-err)}")
        if mtype != SOCK_DIAG_BY_FAMILY or length < _NLMSGHDR.size + _MSG_MIN:
            raise PeerLookupError(f"sock_diag: unexpected netlink message type {mtype}")
        uid, inode = struct.unpack_from("=II", data, _NLMSGHDR.size + _UID_OFFSET)
        # why: a socket its process has closed (orphaned, or in TIME_WAIT) has no inode and
        # reports UID 0: it must not pass for root's.
        return int(uid) if inode else None

    def close(self) -> None:
        self._sock.close()


class ProcLookup:
    """The UID column of ``/proc/self/net/tcp`` and ``tcp6`` (every socket of the namespace)."""

    name = "proc"

    def __init__(self, root: str = "/proc/self/net") -> None:
        self.root = root
        for table in ("tcp", "tcp6"):
            path = os.path.join(root, table)
            try:
                with open(path, "rb") as fh:
                    fh.readline()
            except OSError as e:
                if table == "tcp6" and e.errno == errno.ENOENT:
                    continue  # why: a kernel without IPv6 has no tcp6 table
                raise PeerLookupError(f"cannot read {path}: {_why(e)}") from None

    def owner(self, family: int, local: Address, peer: Address) -> int | None:
        family, local, peer = _unmapped(family, local, peer)
        table = "tcp" if family == socket.AF_INET else "tcp6"
        want = (_proc_address(family, peer), _proc_address(family, local))
        try:
            with open(os.path.join(self.root, table), "rb") as fh:
                fh.readline()
                for line in fh:
                    fields = line.split()
                    if len(fields) > 9 and (fields[1], fields[2]) == want:
                        # A closed (orphaned) socket shows inode 0 and UID 0: not root's.
                        return int(fields[7]) if fields[9] != b"0" else None
        except (OSError, ValueError) as e:
            raise PeerLookupError(f"cannot read {self.root}/{table}: {_why(e)}") from None
        return None

    def close(self) -> None:
        pass


def _proc_address(family: int, addr: Address) -> bytes:
    """``/proc/net/tcp``'s spelling of an address: each 32-bit word of the address in host
    byte order, in hex, then ``:`` and the port in hex."""
    raw = socket.inet_pton(family, addr[0])
    words = struct.unpack(f"={len(raw) // 4}I", raw)
    return ("".join(f"{w:08X}" for w in words) + f":{addr[1]:04X}").encode()


def _why(e: BaseException) -> str:
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e)


def open_lookup(mode: str) -> PeerLookup | None:
    """The lookup ``mode`` asks for, checked to work: None for ``off``.

    ``auto`` prefers netlink and falls back to /proc.  Raises PeerLookupError naming why
    no way of asking the kernel works (the hub then refuses to start: fail closed).
    """
    if mode == "off":
        return None
    candidates = {"auto": (NetlinkLookup, ProcLookup), "netlink": (NetlinkLookup,),
                  "proc": (ProcLookup,)}[mode]
    reasons = []
    for make in candidates:
        try:
            lookup: PeerLookup = make()
        except PeerLookupError as e:
            reasons.append(str(e))
            continue
        try:
            _self_test(lookup)
        except PeerLookupError as e:
            lookup.close()
            reasons.append(f"{lookup.name}: {e}")
            continue
        if reasons:
            log.info("peer lookup: %s (%s)", lookup.name, "; ".join(reasons))
        return lookup
    raise PeerLookupError("cannot learn which user owns a loopback connection: "
                          + "; ".join(reasons))


def _self_test(lookup: PeerLookup) -> None:
    """Connect to ourselves over loopback and check the kernel names our own UID.

    Where binding a port is refused (systemd's ``SocketBindDeny=`` allows the service its
    own ports only), ask for a socket that cannot exist instead: the kernel must answer.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        try:
            listener.bind(("127.0.0.1", 0))
        except PermissionError:
            if lookup.owner(socket.AF_INET, ("127.0.0.1", 1), ("127.0.0.1", 1)) is not None:
                raise PeerLookupError("the kernel named an owner of a socket that does not "
                                      "exist") from None
            return
        listener.listen(1)
        with socket.create_connection(listener.getsockname(), timeout=2):
            server, _ = listener.accept()
            with server:
                uid = owner_of(lookup, server)
    if uid != os.geteuid():
        raise PeerLookupError(f"the kernel named UID {uid} for a socket of UID {os.geteuid()}")
