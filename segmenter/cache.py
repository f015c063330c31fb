"""An LRU cache of image embeddings, bounded by bytes and keyed by the image's content.

Keying by a hash of the pixels (not by ``id()`` or a path) means an edited image
never gets a stale embedding, and the same frame seen twice is encoded once.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from detseg.images import image_key

__all__ = ["EmbeddingCache", "image_key"]


class EmbeddingCache:
    """Least-recently-used mapping ``key -> (value, nbytes)`` holding at most ``max_bytes``.

    An entry larger than ``max_bytes`` is not stored (``max_bytes=0`` disables caching).
    """

    def __init__(self, max_bytes: int = 256 * 2**20):
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str):
        """The cached value (marked most recently used) or None; counts a hit or a miss."""
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item[0]

    def put(self, key: str, value, nbytes: int) -> None:
        """Store ``value``, evicting least recently used entries to stay within ``max_bytes``."""
        if key in self._items:
            self.bytes -= self._items.pop(key)[1]
        if nbytes > self.max_bytes:
            return
        while self._items and self.bytes + nbytes > self.max_bytes:
            _, (_, old) = self._items.popitem(last=False)
            self.bytes -= old
        self._items[key] = (value, nbytes)
        self.bytes += nbytes

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)
