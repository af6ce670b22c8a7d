"""A list response into the cache: spooled while it streams, decoded into the collection's
list assembly, committed by its terminal page.

A Table (kubectl's list, asked upstream with ``includeObject=Object`` for a cache agent:
proxy/remote.py) is a list whose rows hold the items: their whole objects are stored.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from typing import IO

from yurthub.cache.entry import Entry, Sink
from yurthub.cache.handlers import Handler
from yurthub.cache.mutation import ListAssembly
from yurthub.cache.tee import Outcome, Tee
from yurthub.gil import long_job, pace
from yurthub.kube import skeleton
from yurthub.kube.fields import read_paths
from yurthub.kube.framing import ListParser
from yurthub.kube.table import is_table, row_object
from yurthub.storage import QuotaExceeded

SPOOL_BLOCK = 256 << 10
# Seconds a paged list may wait for its next page while another list of the collection
# waits for it; then the newer list goes first (the pager's list is not cached).
PAGE_GAP = 2.0


class ListHandler(Handler):
    """list: the body is spooled while it streams, then decoded into a list assembly that
    the terminal page commits atomically.

    Spooling keeps the writer thread in system calls (which release the GIL) while the
    client is being served: decoding 10,000 pods while they stream would make the request
    thread wait for the GIL after every send, and the client with it.
    """

    def __init__(self, writer: Sink, tee: Tee, entry: Entry) -> None:
        super().__init__(writer, tee, entry)
        # An unnamed file in the cache's file system; the writer splices the pipe into it.
        self._spool: IO[bytes] = tempfile.TemporaryFile(  # closed by finish or on_fail
            dir=writer.spool_dir, prefix=".spool-", buffering=0)
        self.spool_fd = self._spool.fileno()
        self._parser = ListParser(table_rows=True)
        # msgspec: build only what the index needs of each item (None: the stdlib path,
        # whose parser has built every item already).
        self._skeleton = skeleton.decoder(read_paths(entry.rt))
        self.assembly: ListAssembly | None = None
        self._kind = ""
        self._api_version = ""
        self._table: bool | None = None  # a Table's rows (kubectl's list), known at item 1
        self.spooled = 0

    def inflate_limit(self) -> int | None:
        return self.writer.max_list_bytes

    def ready(self) -> bool:
        """Attach to (or start) the collection's list assembly, or wait for the page before."""
        if self.assembly is not None:
            return True
        coll = self.collection()
        sel = self.entry.selectors
        assert sel is not None
        current = coll.assembly
        if self.entry.continue_token:
            if current is not None and current.view == sel.key \
                    and current.expected_token == self.entry.continue_token:
                self.assembly = current
                current.expected_token = ""
                return True
            if current is not None and current.view == sel.key and not current.expected_token:
                return False  # the page before is still being read: wait for it
            self.fail("a continue page whose earlier pages were not cached")
            return True
        if current is not None:
            if not (current.expected_token and time.monotonic() - current.touched > PAGE_GAP):
                return False  # another list of this collection is being assembled
            # A pager that stopped after a page (a client that found what it wanted, or
            # was restarted) would hold every list of the collection parked, its tee
            # filling the memory limit, until the page timeout.  This list is newer.
            coll.abort_list(current, "another list came while it waited for its next page")
        self.assembly = coll.begin_list(sel.key, sel, self.entry.asked_at,
                                        consistent=self.entry.consistent)
        return True

    def feed(self, data: bytes) -> None:
        if not self.dead:
            try:
                self._spool.write(data)
            except OSError as e:
                self.fail(f"cannot spool the list: {e}", reason=self.writer.space_problem(e))

    def splice(self, limit: int) -> int:
        """Move up to ``limit`` bytes from the pipe to the spool inside the kernel.

        Returns the bytes moved (0 at the end of the body); BlockingIOError when the pipe
        is empty for now.
        """
        try:
            n = os.splice(self.tee.read_fd, self.spool_fd, limit,
                          flags=os.SPLICE_F_NONBLOCK | os.SPLICE_F_MOVE)
        except BlockingIOError:
            raise
        except OSError as e:
            self.fail(f"cannot spool the list: {e}", reason=self.writer.space_problem(e))
            return -1
        self.spooled += n
        limit = self.writer.max_list_bytes
        if self.spooled > limit:
            # It could never be committed, and the spool is on the cache's own disk.
            why = f"a list of {self.entry.ck} larger than the cache quota ({limit} bytes)"
            self.writer.storage_failed(QuotaExceeded(why, "component", self.spooled - limit,
                                                     component=self.entry.component,
                                                     growth=self.spooled),
                                       self.entry, self.entry.ck)
            self.fail(why, reason="too-large")
            return -1
        return n

    def finish(self, outcome: Outcome) -> None:
        if self.dead:
            return
        with long_job():
            self._finish(outcome)

    def _finish(self, outcome: Outcome) -> None:
        spool, self._spool = self._spool, io.BytesIO()
        try:
            if outcome is Outcome.WHOLE:
                os.lseek(spool.fileno(), 0, os.SEEK_SET)
                for block in iter(lambda: spool.read(SPOOL_BLOCK), b""):
                    super().feed(block)
                    if self.dead:
                        return
        except OSError as e:
            self.fail(f"cannot read the spooled list: {e}")
            return
        finally:
            spool.close()
        super().finish(outcome)

    def on_fail(self, why: str) -> None:
        self._spool.close()
        if self.assembly is not None:
            self.collection().abort_list(self.assembly, why)

    def consume(self, data: bytes) -> None:
        items = []
        decode = self._skeleton
        for item in self._parser.feed(data):
            pace()
            if self._table is None:  # the head (kind first) is read before the first item
                self._table = is_table(self._parser.head())
            if self._table:
                entry = self._row_item(item.obj)
                if self.dead:
                    return
            elif decode is None or item.decoded:
                kind, api_version = self._item_type()
                entry = self.to_item(item.obj, item.raw, kind, api_version)
            else:
                kind, api_version = self._item_type()
                entry = self.to_item(decode(item.raw), item.raw, kind, api_version, whole=False)
            if entry is not None:
                items.append(entry)
        if items and self.assembly is not None:
            self.collection().list_items(self.assembly, items)

    def _row_item(self, row: dict) -> tuple[str, str, bytes, dict] | None:
        """A Table row's whole object, stored as a list's item is."""
        found = row_object(row)
        if found is None:
            self.fail("a Table whose rows hold less than their whole objects", reason="table")
            return None
        obj, raw = found
        kind, api_version = str(obj.get("kind")), str(obj.get("apiVersion", ""))
        if not self._kind:
            self._kind, self._api_version = kind, api_version
        return self.to_item(obj, raw, kind, api_version)

    def _item_type(self) -> tuple[str, str]:
        if not self._kind:
            head = self._parser.head()
            kind = head.get("kind", "")
            self._kind = kind[:-4] if kind.endswith("List") else kind
            self._api_version = head.get("apiVersion", "")
        return self._kind, self._api_version

    def end(self, outcome: Outcome) -> None:
        a = self.assembly
        if a is None:
            return
        coll = self.collection()
        if outcome is not Outcome.WHOLE:
            coll.abort_list(a, f"response {outcome.value}")
            self.writer.dropped(self.entry, outcome.value, "list did not end whole")
            return
        info = self._parser.close()
        if info.is_status:
            coll.abort_list(a, "the apiserver answered a Status")
            return
        table = is_table(self._parser.head())
        if table and not info.item_count:
            kind, api_version = "", ""  # an empty Table: an empty list, of no kind said
        else:
            kind, api_version = self._item_type()
        if kind:
            coll.learn_type(kind, api_version)
        rv = info.resource_version_int
        if a.list_rv and rv != a.list_rv:
            # The pages of one list are one snapshot (the continue token carries its
            # version): pages of two are no list that ever was.
            coll.abort_list(a, f"a page at resourceVersion {rv} after pages at {a.list_rv}")
            return
        a.list_rv = rv
        if info.continue_token:
            a.expected_token = info.continue_token  # more pages follow
            return
        coll.commit_list(a)
