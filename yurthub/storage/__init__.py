"""The crash-safe, transactional cache tree: keys, the disk store, its index, history and recovery.

``DiskStore`` implements the ``Store`` protocol; the cache package gives it meaning.
"""

from yurthub.storage.disk import DiskStore
from yurthub.storage.history import REMOVED, HistorySlice, removed_record
from yurthub.storage.keys import CollectionKey, validate_name
from yurthub.storage.quota import Quota, QuotaExceeded
from yurthub.storage.rootlock import not_a_cache, root_in_use
from yurthub.storage.store import (
    CollectionStats,
    Entry,
    LostObject,
    RecoveryReport,
    Store,
    StoreStats,
    Transaction,
)
from yurthub.storage.txn import DiskTransaction

__all__ = [
    "REMOVED",
    "CollectionKey",
    "CollectionStats",
    "DiskStore",
    "DiskTransaction",
    "Entry",
    "HistorySlice",
    "LostObject",
    "Quota",
    "QuotaExceeded",
    "RecoveryReport",
    "Store",
    "StoreStats",
    "Transaction",
    "not_a_cache",
    "removed_record",
    "root_in_use",
    "validate_name",
]
