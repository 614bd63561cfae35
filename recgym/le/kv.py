"""Incremental reads for :class:`~recgym.le.model.LLMEnvironment`: a prefix cache of key/value
states per LoRA adapter, so that stepping a user costs the tokens that changed.

A read window (``h[read_from(len(h)):]``, positions from 0 at its start) is a key; its value
is the decoder's per-layer keys and values (after RoPE, as transformers' caches hold them) and,
for the state model, the state at its last position. A request finds the longest cached prefix
of its window, and one batched forward feeds only the missing tokens (and the reward model's
candidates) behind each user's past: pasts padded to a common length, a 4D additive mask that
hides the pads, position ids that continue each window. Requests whose numbers of new tokens
differ a lot go to separate forwards (buckets), so one full read does not pad many one-token
extensions. A window that starts a new block is a miss: its full read.

Across episodes (``IncrementalReader.cross_episode``, for training, where the same users start
episode after episode): a window read in full (a *root*: an episode's start, or a new block)
also serves every shorter window it begins with, its keys and values cut to that length, so a
user who starts again from a shorter part of the same logged block costs one token (the SM's
last item, for its state) instead of a whole window; and roots are kept in an LRU of their own,
so that the windows of stepping users do not push the episodes' starts out. Outputs stay those
of full reads up to float noise; evaluation keeps the default, exact mode.

torch and transformers are imported here; ``import recgym.le`` does not import this.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from recgym.le.model import LLMEnvironment

__all__ = ["DEFAULT_BYTES", "Entry", "IncrementalReader", "PrefixCache", "Read"]

DEFAULT_BYTES = 256 * 2**20
"""Default byte budget of one adapter's prefix cache."""

_MAX_TOKENS = 4096
"""Query tokens (rows times new tokens) per forward: bounds the activations' memory."""
CANDIDATE_CHUNK = 256
"""Candidates per request and forward in :meth:`IncrementalReader.scores`."""

Key = tuple[int, ...]
_NONE = np.zeros(0, dtype=np.int64)


@dataclass
class Entry:
    """One cached window.

    Attributes:
        kv: ``(layers, 2, kv_heads, length, head_dim)`` keys (``[:, 0]``) and values
            (``[:, 1]``) of every window position.
        state: the SM's unit state at the window's last position (``None`` for the RM).
        root: read in full (no cached past), so cross-episode reads may cut it.
    """

    kv: Tensor
    state: np.ndarray | None = None
    root: bool = False

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        extra = 0 if self.state is None else self.state.nbytes
        return self.kv.numel() * self.kv.element_size() + extra


class PrefixCache:
    """Windows to :class:`Entry`, least recently used evicted first past ``max_bytes``.

    With ``cross_episode``, roots (windows read in full) are kept apart, in a second LRU of
    ``max_bytes``, so that the many windows of stepping users do not push out the episodes'
    starts; and :meth:`longest` also finds a root that begins with the window (cut to it).
    """

    def __init__(self, max_bytes: int = DEFAULT_BYTES) -> None:
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._roots: OrderedDict[Key, Entry] = OrderedDict()
        # A proper prefix of a kept root's key -> that key.
        self._covers: dict[Key, Key] = {}
        self.nbytes = 0
        self.root_bytes = 0
        self._max_bytes = int(max_bytes)
        self.cross_episode = False

    @property
    def max_bytes(self) -> int:
        """The byte budget of each LRU (lowering it evicts at once)."""
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        self._max_bytes = int(value)
        self._evict()

    def __len__(self) -> int:
        return len(self._entries) + len(self._roots)

    def __contains__(self, key: Key) -> bool:
        return key in self._entries or key in self._roots

    def _get(self, key: Key) -> Entry | None:
        """The entry of ``key`` (marked as used), or ``None``."""
        for entries in (self._entries, self._roots):
            entry = entries.get(key)
            if entry is not None:
                entries.move_to_end(key)
                return entry
        return None

    def longest(self, window: Key, limit: int | None = None) -> tuple[int, Entry | None]:
        """The longest cached prefix of ``window`` (marked as used), at most ``limit`` long:
        its length and entry. Cross-episode, a longer root that begins with that prefix counts
        too (a new entry of its keys and values cut to the prefix; not cached itself)."""
        top = len(window) if limit is None else min(limit, len(window))
        found, entry = 0, None
        for n in range(top, 0, -1):
            entry = self._get(window[:n])
            if entry is not None:
                found = n
                break
        if not self.cross_episode:
            return found, entry
        for m in range(top, found, -1):
            key = self._covers.get(window[:m])
            root = None if key is None else self._roots.get(key)
            if key is not None and root is not None:
                self._roots.move_to_end(key)
                return m, Entry(root.kv[:, :, :, :m])
        return found, entry

    def put(self, key: Key, entry: Entry) -> None:
        """Store ``entry`` (an entry larger than the budget is not kept); cross-episode, a
        root goes to the roots' LRU."""
        self._drop(key)
        if entry.nbytes > self._max_bytes:
            return
        if entry.root and self.cross_episode:
            self._roots[key] = entry
            self.root_bytes += entry.nbytes
            for n in range(1, len(key)):
                self._covers[key[:n]] = key
        else:
            self._entries[key] = entry
            self.nbytes += entry.nbytes
        self._evict()

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()
        self._roots.clear()
        self._covers.clear()
        self.nbytes = self.root_bytes = 0

    def _drop(self, key: Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.nbytes -= entry.nbytes
        root = self._roots.pop(key, None)
        if root is None:
            return
        self.root_bytes -= root.nbytes
        for n in range(1, len(key)):
            if self._covers.get(key[:n]) == key:
                del self._covers[key[:n]]

    def _evict(self) -> None:
        while self._entries and self.nbytes > self._max_bytes:
            self._drop(next(iter(self._entries)))
        while self._roots and self.root_bytes > self._max_bytes:
            self._drop(next(iter(self._roots)))


@dataclass
class Read:
    """One row of an incremental forward: a past, the window tokens after it, candidates.

    Attributes:
        past: the cached prefix's entry (``None``: nothing cached, read from position 0).
        new: the window's items after the past (positions continue the past's).
        candidates: items that each see the whole window and themselves, at the position right
            after the window.
    """

    past: Entry | None
    new: np.ndarray
    candidates: np.ndarray

    @property
    def n_past(self) -> int:
        """Cached positions."""
        return 0 if self.past is None else int(self.past.kv.shape[3])

    @property
    def width(self) -> int:
        """Query tokens fed."""
        return len(self.new) + len(self.candidates)


@dataclass
class Fed:
    """What a forward gave one :class:`Read`: the hidden states and the keys/values it fed."""

    hidden: Tensor  # (width, H) float32: new tokens, then candidates
    kv: Tensor | None  # (layers, 2, kv_heads, width, head_dim); None: nothing was fed


def _buckets(reads: Sequence[Read]) -> Iterator[list[int]]:
    """Indices of ``reads`` in forwards: by the bit length of their width (1, 2-3, 4-7...), at
    most :data:`_MAX_TOKENS` query tokens each."""
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(reads):
        groups.setdefault(r.width.bit_length(), []).append(i)
    for bits in sorted(groups):
        rows = max(1, _MAX_TOKENS // (1 << bits))
        idx = groups[bits]
        for s in range(0, len(idx), rows):
            yield idx[s : s + rows]


class IncrementalReader:
    """The SM's and RM's incremental reads of one LE, a :class:`PrefixCache` per adapter.

    Args:
        le: the LE.
        max_bytes: each adapter's cache budget.
    """

    def __init__(self, le: LLMEnvironment, max_bytes: int = DEFAULT_BYTES) -> None:
        self.le = le
        self.caches = {"sm": PrefixCache(max_bytes), "rm": PrefixCache(max_bytes)}
        # transformers 5 renamed the decoder's ``past_key_values`` argument ``cache``.
        import inspect

        params = inspect.signature(le.decoder.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    def clear(self) -> None:
        """Forget both caches (the weights changed)."""
        for cache in self.caches.values():
            cache.clear()

    def resize(self, max_bytes: int) -> None:
        """Give each adapter's cache ``max_bytes``."""
        for cache in self.caches.values():
            cache.max_bytes = max_bytes

    @property
    def cross_episode(self) -> bool:
        """Whether reads reuse roots across episodes (see the module docstring)."""
        return self.caches["sm"].cross_episode

    @cross_episode.setter
    def cross_episode(self, value: bool) -> None:
        for cache in self.caches.values():
            cache.cross_episode = bool(value)

    # ----- the forward ------------------------------------------------------------------------

    def forward(self, adapter: str, reads: Sequence[Read]) -> list[Fed]:
        """Feed every read in bucketed batched forwards under ``adapter``."""
        hidden = int(self.le.lm.config.hidden_size)
        out: list[Fed | None] = [
            Fed(torch.zeros(0, hidden), None) if not r.width else None for r in reads
        ]
        fed = [i for i, r in enumerate(reads) if r.width]
        for idx in _buckets([reads[i] for i in fed]):
            rows = [fed[i] for i in idx]
            for i, f in zip(rows, self._forward(adapter, [reads[i] for i in rows]), strict=True):
                out[i] = f
        return [f for f in out if f is not None]

    def _forward(self, adapter: str, reads: Sequence[Read]) -> list[Fed]:
        from transformers import DynamicCache

        le = self.le
        if le.lm.active_adapter != adapter:  # setting it walks every module
            le.lm.set_adapter(adapter)
        dev = le.device
        n_rows = len(reads)
        pasts = [r.n_past for r in reads]
        p = max(pasts)
        q = max(r.width for r in reads)
        items = np.zeros((n_rows, q), dtype=np.int64)
        positions = np.zeros((n_rows, q), dtype=np.int64)
        allowed = np.zeros((n_rows, q, p + q), dtype=bool)
        allowed[:, np.arange(q), p + np.arange(q)] = True  # every query sees itself
        tril = np.tril(np.ones((q, q), dtype=bool))
        for b, r in enumerate(reads):
            n, m, c = pasts[b], len(r.new), len(r.candidates)
            items[b, :m] = r.new
            items[b, m : m + c] = r.candidates
            positions[b, :m] = n + np.arange(m)
            positions[b, m : m + c] = n + m
            allowed[b, : m + c, :n] = True  # the past, not its pads
            allowed[b, :m, p : p + m] = tril[:m, :m]
            allowed[b, m : m + c, p : p + m] = True  # candidates see the window, not each other
        dtype = le.decoder.dtype if hasattr(le.decoder, "dtype") else torch.float32
        mask = torch.zeros((n_rows, 1, q, p + q), dtype=dtype)
        mask.masked_fill_(torch.from_numpy(~allowed)[:, None], torch.finfo(dtype).min)
        if p:
            first = next(r.past for r in reads if r.past is not None)
            assert first is not None
            layers, _, heads, _, dim = first.kv.shape
            past = first.kv.new_zeros((layers, 2, n_rows, heads, p, dim))
            for b, r in enumerate(reads):
                if r.past is not None:
                    past[:, :, b, :, : pasts[b]] = r.past.kv
            cache = DynamicCache(ddp_cache_data=[(past[i, 0], past[i, 1]) for i in range(layers)])
        else:
            cache = DynamicCache()
        emb = le.item_emb[torch.from_numpy(items).to(dev)].to(dtype)
        kwargs: dict[str, Any] = {self._cache_arg: cache}
        hidden = le.decoder(
            inputs_embeds=emb,
            attention_mask=mask.to(dev),
            position_ids=torch.from_numpy(positions).to(dev),
            use_cache=True,
            **kwargs,
        ).last_hidden_state.float()
        # Each layer's keys and values, the past's then the fed tokens': keep the latter.
        kv = torch.stack(
            [torch.stack([keys[:, :, p:], values[:, :, p:]]) for keys, values, *_ in cache]
        )  # (layers, 2, B, kv_heads, q, head_dim)
        le.tokens_fed += sum(r.width for r in reads)
        return [Fed(hidden[b, : r.width], kv[:, :, b, :, : r.width]) for b, r in enumerate(reads)]

    # ----- the SM and the RM ------------------------------------------------------------------

    def states(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """``(B, state_dim)`` SM states at the last position of each (non-empty) window."""
        le = self.le
        cache = self.caches["sm"]
        keys = [tuple(w.tolist()) for w in windows]
        out = np.empty((len(keys), le.state_dim), dtype=np.float32)
        todo: dict[Key, list[int]] = {}
        for i, key in enumerate(keys):
            n, entry = cache.longest(key)
            if n == len(key) and entry is not None and entry.state is not None:
                out[i] = entry.state
            else:
                todo.setdefault(key, []).append(i)
        if not todo:
            return out
        order = list(todo)
        reads = []
        for key in order:
            # At most all but the last item: the state is the hidden state of a fed item.
            n, entry = cache.longest(key, len(key) - 1)
            reads.append(Read(entry, np.asarray(key[n:], dtype=np.int64), np.zeros(0, np.int64)))
        fed = self.forward("sm", reads)
        last = torch.stack([f.hidden[-1] for f in fed])
        states = le.state_vectors(last).cpu().numpy().astype(np.float32)
        for key, read, f, state in zip(order, reads, fed, states, strict=True):
            out[todo[key]] = state
            assert f.kv is not None  # a miss feeds at least its last item
            cache.put(key, Entry(_join(read.past, f.kv), state, root=read.past is None))
        return out

    def scores(
        self,
        windows: Sequence[np.ndarray],
        candidates: np.ndarray,
        keep: Sequence[bool] | None = None,
    ) -> np.ndarray:
        """``(B, k)`` raw RM scores of ``candidates[i]`` after ``windows[i]``.

        Each candidate sits right after its window and sees it and itself. ``keep[i]`` (for
        ``k == 1``): also cache ``windows[i] + (candidates[i, 0],)``, the read window of the
        history with the candidate taken.
        """
        cache = self.caches["rm"]
        n_rows, k = candidates.shape
        groups: dict[Key, list[int]] = {}
        for i, w in enumerate(windows):
            groups.setdefault(tuple(w.tolist()), []).append(i)
        # First the windows' missing items, then the candidates against the whole windows: a
        # candidate's score never depends on what was cached (same seed, same rewards).
        entries: dict[Key, Entry | None] = {}
        misses: list[tuple[Key, Read]] = []
        for key in groups:
            n, entry = cache.longest(key)
            entries[key] = entry
            if n < len(key):
                misses.append((key, Read(entry, np.asarray(key[n:], np.int64), _NONE)))
        for (key, read), f in zip(misses, self.forward("rm", [r for _, r in misses]), strict=True):
            assert f.kv is not None
            entries[key] = Entry(_join(read.past, f.kv), root=read.past is None)
            cache.put(key, entries[key])  # type: ignore[arg-type]
        reads, where = [], []
        for key, rows in groups.items():
            c = candidates[rows].reshape(-1)
            for s in range(0, len(c), CANDIDATE_CHUNK):
                reads.append(Read(entries[key], _NONE, c[s : s + CANDIDATE_CHUNK]))
                where.append((key, s))
        flat = {key: np.empty(len(rows) * k) for key, rows in groups.items()}
        for (key, s), read, f in zip(where, reads, self.forward("rm", reads), strict=True):
            flat[key][s : s + read.width] = self.le.scores(f.hidden).double().cpu().numpy()
            if keep is None or k != 1:
                continue
            assert f.kv is not None
            for j, item in enumerate(read.candidates):
                if keep[groups[key][s + j]]:
                    kv = _join(entries[key], f.kv[:, :, :, j : j + 1])
                    cache.put((*key, int(item)), Entry(kv))
        out = np.empty((n_rows, k), dtype=np.float64)
        for key, values in flat.items():
            out[groups[key]] = values.reshape(-1, k)
        return out


def _join(past: Entry | None, kv: Tensor) -> Tensor:
    """The past's keys/values followed by ``kv`` (a fresh tensor either way)."""
    if past is None:
        return kv.clone()
    return torch.cat([past.kv, kv], dim=3)
