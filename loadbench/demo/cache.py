"""The demo's caches: a response cache in front of its models, and the LLM simulator's prefix cache.

Consumes the ``--cache lru:SIZE|lfu:SIZE`` and ``--llm-prefix-cache [BLOCKS]`` options
(`loadbench.demo.args`); produces thread-safe caches the demo's threaded server shares between its
request threads, each keeping its own counts (hits, misses, evictions) so tests and users can hold
loadbench's figures against the server's own (``GET /cache``). No I/O.

Response cache (`ResponseCache`): keyed on the route and the request body as canonical JSON
(sorted keys, no spaces: `loadbench.protocols.variety.canonical_body`, the form loadbench's
``payload_key`` hashes, so both call the same bodies repeats), so an exact repeat of a body on the same route (the model is in the
route, or in the body) is a hit, anything else a miss. A hit is answered after `HIT_MS`; a miss
takes the model's service time and stores its answer. A hit is counted when a lookup finds the
body, a miss when a computed answer is stored: a request that fails (a bad body) is neither, and
carries no ``X-Cache`` header. Policies:

- ``lru``: evicts the least recently used body.
- ``lfu``: evicts the least frequently used body (uses counted since it last entered the cache,
  its miss included), ties broken by recency: of the least used, the least recently used goes.
  O(1) per operation (one recency-ordered bucket per use count).

Prefix cache (`PrefixCache`): vLLM's automatic prefix caching in miniature. A prompt's tokens
(whitespace words) are cut into blocks of `BLOCK_TOKENS`; block k's hash chains block k-1's, so a
block's hash names the whole prefix up to its end. A prompt's cached tokens are those of its
leading blocks already stored (the longest cached prefix, in whole blocks); then all its full
blocks are stored, least recently used blocks evicted beyond the capacity. As vLLM, at least one
token of a prompt is always computed: a prompt cached whole counts its last block as uncached.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from loadbench.errors import UsageError
from loadbench.protocols.variety import canonical_body

POLICIES = ("lru", "lfu")
HIT_MS = 1.0  # how long a hit takes to answer: a lookup, not a model
BLOCK_TOKENS = 16  # tokens per prefix block, as vLLM's default block size
DEFAULT_PREFIX_BLOCKS = 4096  # blocks a prefix cache holds when --llm-prefix-cache names no size
DEFAULT_PREFILL_MS_PER_TOKEN = 0.05  # with the prefix cache on: the time of each uncached prompt token


@dataclass(frozen=True)
class CacheSpec:
    """A response cache's policy (``lru`` or ``lfu``) and capacity in entries (1 or more)."""

    policy: str
    size: int


def parse_cache_spec(text: str) -> CacheSpec:
    """``lru:SIZE`` or ``lfu:SIZE`` -> `CacheSpec`; ValueError (one line) for anything else."""
    policy, sep, size = text.strip().partition(":")
    policy = policy.lower()
    if not sep or policy not in POLICIES:
        raise ValueError(f"{text!r} is not a cache: give lru:SIZE or lfu:SIZE (e.g. lru:100)")
    try:
        entries = int(size)
    except ValueError:
        raise ValueError(f"{text!r}: the cache's size must be a whole number of entries") from None
    if entries < 1:
        raise ValueError(f"{text!r}: the cache's size must be 1 or more entries")
    return CacheSpec(policy, entries)


class _Lfu:
    """Least frequently used, ties by recency: one recency-ordered bucket per use count."""

    def __init__(self) -> None:
        self.values: dict[Hashable, Any] = {}
        self.count: dict[Hashable, int] = {}
        self.buckets: dict[int, OrderedDict[Hashable, None]] = {}
        self.least = 0

    def __len__(self) -> int:
        return len(self.values)

    def touch(self, key: Hashable) -> None:
        n = self.count[key]
        bucket = self.buckets[n]
        del bucket[key]
        if not bucket:
            del self.buckets[n]
            if self.least == n:
                self.least = n + 1
        self.count[key] = n + 1
        self.buckets.setdefault(n + 1, OrderedDict())[key] = None

    def insert(self, key: Hashable, value: Any) -> None:
        self.values[key] = value
        self.count[key] = 1
        self.buckets.setdefault(1, OrderedDict())[key] = None
        self.least = 1

    def evict(self) -> None:
        bucket = self.buckets[self.least]
        key, _ = bucket.popitem(last=False)  # the least recently used of the least used
        if not bucket:
            del self.buckets[self.least]
            self.least = min(self.buckets, default=0)
        del self.values[key], self.count[key]


class ResponseCache:
    """A bounded map of answers with its own counts; every method is thread safe."""

    def __init__(self, spec: CacheSpec) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self._lru: OrderedDict[Hashable, Any] = OrderedDict()
        self._lfu = _Lfu()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._lru) if self.spec.policy == "lru" else len(self._lfu)

    def get(self, key: Hashable) -> Any | None:
        """The stored answer (a hit, counted; now the most recently used) or None (not counted:
        the miss counts when its answer is stored, `put`)."""
        with self._lock:
            if self.spec.policy == "lru":
                if key not in self._lru:
                    return None
                self._lru.move_to_end(key)
                value = self._lru[key]
            else:
                if key not in self._lfu.values:
                    return None
                self._lfu.touch(key)
                value = self._lfu.values[key]
            self.hits += 1
            return value

    def put(self, key: Hashable, value: Any) -> None:
        """Store a computed answer: a miss. Two concurrent misses of one body both count; the
        second replaces the first's answer (a use, not a new entry)."""
        with self._lock:
            self.misses += 1
            if self.spec.policy == "lru":
                if key not in self._lru and len(self._lru) >= self.spec.size:
                    self._lru.popitem(last=False)
                    self.evictions += 1
                self._lru[key] = value
                self._lru.move_to_end(key)
            elif key in self._lfu.values:
                self._lfu.values[key] = value
                self._lfu.touch(key)
            else:
                if len(self._lfu) >= self.spec.size:
                    self._lfu.evict()
                    self.evictions += 1
                self._lfu.insert(key, value)

    def counts(self) -> dict[str, Any]:
        """``GET /cache``: the policy, size, entries held, and the counts since start."""
        with self._lock:
            held = len(self._lru) if self.spec.policy == "lru" else len(self._lfu)
            looked = self.hits + self.misses
            return {
                "policy": self.spec.policy,
                "size": self.spec.size,
                "entries": held,
                "hits": self.hits,
                "misses": self.misses,
                "evictions": self.evictions,
                "hit_ratio": round(self.hits / looked, 6) if looked else None,
            }


def body_key(route: str, body: Any) -> bytes:
    """A request's cache key: its route and its body in the form loadbench keys payloads by
    (`loadbench.protocols.variety.canonical_body`), whole: never a hash that two bodies could share."""
    return route.encode() + b"\n" + canonical_body(body)


def cached_answer(
    cache: ResponseCache | None, route: str, body: Any, compute: Callable[[], tuple[int, Any, bool]]
) -> tuple[int, Any, dict[str, str]]:
    """(status, answer, headers) of a request through ``cache``. ``compute``: the route's own
    (status, answer, whether a model served it); only a model's successful answer is stored and
    labelled (``X-Cache: MISS``); a hit waits `HIT_MS` and is labelled ``X-Cache: HIT``."""
    if cache is None:
        status, answer, _ = compute()
        return status, answer, {}
    key = body_key(route, body)
    stored = cache.get(key)
    if stored is not None:
        time.sleep(HIT_MS / 1000.0)
        return 200, stored, {"X-Cache": "HIT"}
    status, answer, served = compute()
    if not served or status != 200:
        return status, answer, {}
    cache.put(key, answer)
    return status, answer, {"X-Cache": "MISS"}


def _block_hashes(tokens: list[str]) -> list[bytes]:
    hashes, previous = [], b""
    for start in range(0, len(tokens) - BLOCK_TOKENS + 1, BLOCK_TOKENS):
        block = "\x1f".join(tokens[start : start + BLOCK_TOKENS]).encode()
        previous = hashlib.blake2b(previous + b"\x1e" + block, digest_size=16).digest()
        hashes.append(previous)
    return hashes


class PrefixCache:
    """Prompt-prefix blocks the LLM simulator has seen, least recently used evicted; thread safe."""

    def __init__(self, blocks: int = DEFAULT_PREFIX_BLOCKS) -> None:
        if blocks < 1:
            raise ValueError("the prefix cache holds 1 or more blocks")
        self.capacity = blocks
        self._lock = threading.Lock()
        self._blocks: OrderedDict[bytes, None] = OrderedDict()
        self.prompts = 0
        self.prompt_tokens = 0
        self.cached_tokens = 0
        self.evictions = 0

    def lookup_and_store(self, tokens: list[str]) -> int:
        """The prompt's cached tokens (the longest stored prefix, whole blocks, never the whole
        prompt); then its full blocks are stored as the most recently used."""
        hashes = _block_hashes(tokens)
        with self._lock:
            found = 0
            for digest in hashes:
                if digest not in self._blocks:
                    break
                found += 1
            cached = min(found * BLOCK_TOKENS, max(len(tokens) - 1, 0) // BLOCK_TOKENS * BLOCK_TOKENS)
            for digest in hashes:
                if digest in self._blocks:
                    self._blocks.move_to_end(digest)
                else:
                    self._blocks[digest] = None
                    if len(self._blocks) > self.capacity:
                        self._blocks.popitem(last=False)
                        self.evictions += 1
            self.prompts += 1
            self.prompt_tokens += len(tokens)
            self.cached_tokens += cached
            return cached

    def counts(self) -> dict[str, Any]:
        """``GET /cache``'s ``prefix``: blocks held, prompts and their tokens, cached tokens."""
        with self._lock:
            return {
                "block_tokens": BLOCK_TOKENS,
                "capacity_blocks": self.capacity,
                "blocks": len(self._blocks),
                "prompts": self.prompts,
                "prompt_tokens": self.prompt_tokens,
                "cached_tokens": self.cached_tokens,
                "evictions": self.evictions,
            }


@dataclass(frozen=True)
class DemoCaches:
    """What a demo server caches: its answers (``response``), its LLM prompts' prefixes
    (``prefix``) and the LLM simulator's time per uncached prompt token; None: no such cache."""

    response: ResponseCache | None = None
    prefix: PrefixCache | None = None
    prefill_ms_per_token: float = 0.0

    def counts(self) -> dict[str, Any]:
        """``GET /cache``: each cache's counts, None for a cache that is off."""
        return {
            "response": None if self.response is None else self.response.counts(),
            "prefix": None if self.prefix is None else self.prefix.counts(),
        }


NO_CACHES = DemoCaches()  # a server that caches nothing


def demo_caches(
    cache: CacheSpec | None, prefix_blocks: int | None, prefill_ms_per_token: float | None
) -> DemoCaches:
    """The caches the options ask for. The prefill time defaults to
    `DEFAULT_PREFILL_MS_PER_TOKEN` with the prefix cache on, else to 0 (the simulator's TTFT as
    it always was)."""
    prefix = None if prefix_blocks is None else PrefixCache(prefix_blocks)
    if prefill_ms_per_token is None:
        prefill_ms_per_token = DEFAULT_PREFILL_MS_PER_TOKEN if prefix is not None else 0.0
    response = None if cache is None else ResponseCache(cache)
    return DemoCaches(response, prefix, prefill_ms_per_token)


def caches_from_args(args: Any) -> DemoCaches:
    """The caches of the parsed ``loadbench demo`` options (`loadbench.demo.args`); `UsageError`
    for a response cache with ``--replicas`` (each replica would need its own: not served)."""
    if args.cache is not None and (args.replicas or 1) > 1:
        raise UsageError("--cache serves one demo server: leave out --replicas (or --cache)")
    return demo_caches(args.cache, args.llm_prefix_cache, args.llm_prefill_ms_per_token)
