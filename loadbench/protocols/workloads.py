"""LLM workloads: what each request asks for (prompt, output length), synthetic or from a file.

Pure (no Locust). Consumes the LLM scenarios' options (`add_workload_options`) and data rows;
produces `WorkItem` s, one per request, from a `Workload`:

- **synthetic** (``--input-tokens N``): a fresh prompt of N words (or drawn from
  ``--input-dist fixed|uniform|normal`` around N, ``--input-spread``), each word drawn from a
  fixed vocabulary of common English words. Tokens are *approximated by words*: these words
  are one token each in the usual BPE tokenizers (with their leading space), so the server's
  ``usage.prompt_tokens`` is close to N plus its chat template. Seeded by ``--workload-seed``:
  the same seed gives the same sequence of prompts and lengths. Every prompt differs, so a
  prefix cache does not turn the run into a cache benchmark;
- **a prompt** (``--prompt TEXT``, the default): the same text every time;
- **a JSON Lines file** (``--data FILE.jsonl``, ``--payload JSON``): rows of ``{"prompt": ...}``
  or ``{"messages": [...]}``, other keys sent as request fields (``max_tokens`` included);
- **ShareGPT** (``--sharegpt FILE.json``): ``[{"conversations": [{"from": "human", "value":
  ...}, {"from": "gpt", "value": ...}]}]``; the first human turn is the prompt and the length
  in words of the answer that follows is the output length.

Which item each request sends: in turn, or as ``--popularity`` says (`loadbench.load.popularity`);
``--distinct K`` makes K items: K variants of the rows, ShareGPT prompts or ``--prompt``
(`loadbench.protocols.variety`), or K synthetic prompts made once (``--input-tokens``), so a
run has a known repeat structure. ``--shared-prefix-tokens N``: every request starts with the
same N-token system prompt (`shared_prefix`), for servers with prefix caching.

Output length (``max_tokens``): the row's own, else ShareGPT's answer length, else
``--output-tokens N`` (alias ``--max-tokens``) drawn from ``--output-dist``. ``--ignore-eos``
asks the server to generate exactly that many (vLLM's ``ignore_eos`` and ``min_tokens``).
Bad files raise a one-line `UsageError`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from loadbench.errors import UsageError
from loadbench.load.popularity import Picker, parse_popularity
from loadbench.protocols.variety import distinct_bodies

DISTRIBUTIONS = ("fixed", "uniform", "normal")
DEFAULT_PROMPT = "Write one sentence about load testing."
DEFAULT_OUTPUT_TOKENS = 64
# Common English words, each a single token (with its leading space) in GPT and Llama tokenizers.
_VOCABULARY_TEXT = """the of and to in is it that was for on are as with his they at be this have from or one
    had by word but not what all were we when your can said there use an each which she do how
    their if will up other about out many then them these so some her would make like him into
    time has look two more write go see number no way could people my than first water been call
    who its now find long down day did get come made may part over new sound take only little work
    know place year live me back give most very after thing our just name good sentence man think
    say great where help through much before line right too mean old any same tell boy follow came
    want show also around form three small set put end does another well large must big even such
    because turn here why ask went men read need land different home us move try kind hand picture
    again change off play spell air away animal house point page letter mother answer found study
    still learn should world high every near add food between own below country plant last school
    father keep tree never start city earth eye light thought head under story saw left few while
    along might close something seem next hard open example begin life always those both paper
    together got group often run important until children side feet car mile night walk white sea
    began grow took river four carry state once book hear stop without second later miss idea
    enough eat face watch far really almost let above girl sometimes mountain cut young talk soon
    list song being leave family"""
VOCABULARY = tuple(_VOCABULARY_TEXT.split())


@dataclass(frozen=True)
class LengthSpec:
    """A length in tokens: ``fixed`` N, ``uniform`` in [N - spread, N + spread], or ``normal``
    with mean N and standard deviation spread (rounded); never below 1."""

    tokens: int
    dist: str = "fixed"
    spread: float = 0.0

    def sample(self, rng: random.Random) -> int:
        if self.dist == "uniform":
            low, high = round(self.tokens - self.spread), round(self.tokens + self.spread)
            return max(1, rng.randint(low, high))
        if self.dist == "normal":
            return max(1, round(rng.gauss(self.tokens, self.spread)))
        return max(1, self.tokens)


@dataclass(frozen=True)
class WorkItem:
    """One request's content: a prompt or chat messages, its output length, other request fields."""

    prompt: str | None = None
    messages: list[Any] | None = None
    max_tokens: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    key: str | None = None  # its payload_key, when the run keys its payloads (set once, at set-up)


def synthetic_prompt(words: int, rng: random.Random) -> str:
    """``words`` words drawn from `VOCABULARY` (about as many tokens)."""
    return " ".join(rng.choices(VOCABULARY, k=max(1, words)))


class Workload:
    """Hands out one `WorkItem` per request: a file's items round-robin, or generated ones.

    Shared by all users of a process; Locust's users are greenlets of one thread, so the
    sequence is deterministic for a seed.
    """

    def __init__(
        self,
        items: list[WorkItem] | None = None,
        input_length: LengthSpec | None = None,
        output_length: LengthSpec | None = None,
        prompt: str = DEFAULT_PROMPT,
        seed: int = 0,
        picker: Picker | None = None,
    ) -> None:
        if items is not None and not items:
            raise UsageError("the workload holds no requests")
        self.items = items
        self.input_length = input_length
        self.output_length = output_length or LengthSpec(DEFAULT_OUTPUT_TOKENS)
        self.prompt = prompt
        self.rng = random.Random(seed)
        self.picker = picker  # --popularity: which item each request sends; None: in turn
        self._cycle: Iterator[WorkItem] | None = itertools.cycle(items) if items else None

    def keyed(self, key: Callable[[WorkItem], str]) -> None:
        """Give every item its ``key`` (`WorkItem.key`), once, before the load."""
        if self.items:
            self.items = [replace(item, key=key(item)) for item in self.items]
            self._cycle = itertools.cycle(self.items)

    def next(self, input_tokens: int | None = None, output_tokens: int | None = None) -> WorkItem:
        """The next request's content, its ``max_tokens`` always set.

        ``input_tokens`` / ``output_tokens`` (a replayed trace's row) override the lengths:
        the prompt becomes a synthetic one of that many words unless the items come from a file.
        """
        if self._cycle is not None:
            item = self.items[self.picker.next()] if self.picker and self.items else next(self._cycle)
        elif input_tokens or self.input_length is not None:
            words = input_tokens or (self.input_length.sample(self.rng) if self.input_length else 1)
            item = WorkItem(prompt=synthetic_prompt(words, self.rng))
        else:
            item = WorkItem(prompt=self.prompt)
        max_tokens = output_tokens or item.max_tokens or self.output_length.sample(self.rng)
        if max_tokens != item.max_tokens:
            item = WorkItem(item.prompt, item.messages, max_tokens, item.fields, item.key)
        return item

    def describe(self) -> str:
        """One line for logs: where prompts and lengths come from."""
        if self.items is not None:
            source = f"{len(self.items)} requests from a file"
        elif self.input_length is not None:
            source = f"synthetic prompts of {_describe(self.input_length)} words"
        else:
            source = "one fixed prompt"
        return f"{source}; max_tokens {_describe(self.output_length)} unless a row sets it"


def _describe(spec: LengthSpec) -> str:
    return str(spec.tokens) if spec.dist == "fixed" else f"{spec.dist} {spec.tokens}±{spec.spread:g}"


def items_from_rows(rows: list[Any]) -> list[WorkItem]:
    """Data rows (``{"prompt": ...}``, ``{"messages": [...]}`` or plain text) as work items."""
    items = []
    for number, row in enumerate(rows, start=1):
        if isinstance(row, str):
            items.append(WorkItem(prompt=row))
            continue
        if not isinstance(row, dict) or not (
            isinstance(row.get("prompt"), str) or isinstance(row.get("messages"), list)
        ):
            raise UsageError(f'data row {number} has neither a "prompt" text nor a "messages" list')
        fields = {k: v for k, v in row.items() if k not in ("prompt", "messages", "max_tokens")}
        max_tokens = row.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise UsageError(f"data row {number}: max_tokens must be a positive integer")
        items.append(WorkItem(row.get("prompt"), row.get("messages"), max_tokens, fields))
    return items


def read_sharegpt(path: Path) -> list[WorkItem]:
    """A ShareGPT file's conversations as work items: first human turn -> prompt, the answer's
    length in words -> max_tokens. Conversations without a human turn followed by an answer are
    skipped; a file with none is a `UsageError`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"ShareGPT file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read ShareGPT file {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"ShareGPT file {path} is not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, list):
        raise UsageError(f'ShareGPT file {path} is not a JSON list of {{"conversations": [...]}}')
    items = []
    for entry in data:
        turns = entry.get("conversations") if isinstance(entry, dict) else None
        if not isinstance(turns, list):
            continue
        for turn, answer in itertools.pairwise(turns):
            if _role(turn) in ("human", "user") and _role(answer) in ("gpt", "assistant", "chatgpt"):
                prompt, reply = turn.get("value"), answer.get("value")
                if isinstance(prompt, str) and prompt.strip() and isinstance(reply, str):
                    items.append(WorkItem(prompt=prompt, max_tokens=max(1, len(reply.split()))))
                break
    if not items:
        raise UsageError(f"ShareGPT file {path} holds no conversation with a human turn and an answer")
    return items


def _role(turn: Any) -> str:
    return str(turn.get("from", "")).lower() if isinstance(turn, dict) else ""


def add_workload_options(parser: argparse.ArgumentParser) -> None:
    """The LLM scenarios' workload options (see the module docstring)."""
    group = parser.add_argument_group("loadbench LLM workload")
    group.add_argument("--prompt", default=DEFAULT_PROMPT, help="the prompt, sent every time")
    group.add_argument(
        "--input-tokens",
        type=int,
        default=None,
        metavar="N",
        help="synthetic prompts of about N tokens (words)",
    )
    group.add_argument("--input-dist", choices=DISTRIBUTIONS, default="fixed", help="spread of input lengths")
    group.add_argument(
        "--input-spread",
        type=float,
        default=None,
        metavar="S",
        help="uniform: ±S, normal: std dev S (default N/4)",
    )
    group.add_argument(
        "--output-tokens",
        "--max-tokens",
        dest="output_tokens",
        type=int,
        default=DEFAULT_OUTPUT_TOKENS,
        metavar="N",
        help=f"max_tokens per request (default {DEFAULT_OUTPUT_TOKENS})",
    )
    group.add_argument(
        "--output-dist", choices=DISTRIBUTIONS, default="fixed", help="spread of output lengths"
    )
    group.add_argument(
        "--output-spread",
        type=float,
        default=None,
        metavar="S",
        help="uniform: ±S, normal: std dev S (default N/4)",
    )
    group.add_argument(
        "--ignore-eos",
        action="store_true",
        help="generate exactly max_tokens (sends vLLM's ignore_eos and min_tokens)",
    )
    group.add_argument("--workload-seed", type=int, default=0, help="seed of synthetic prompts and lengths")
    group.add_argument(
        "--shared-prefix-tokens",
        type=int,
        default=None,
        metavar="N",
        help="start every request with the same system prompt of N tokens (words, or --tokenizer's tokens), "
        "the rest unique per request (a nonce first in the user text; none with --popularity/--distinct, "
        "whose repeats stay exact): time to first token with a server's prefix cache",
    )
    group.add_argument(
        "--sharegpt",
        default=None,
        metavar="FILE.json",
        help="ShareGPT conversations: prompts and answer lengths",
    )


def length_spec(tokens: int, dist: str, spread: float | None, option: str) -> LengthSpec:
    """A checked `LengthSpec` from the options (``option`` names the count in messages)."""
    if tokens < 1:
        raise UsageError(f"{option} must be at least 1, not {tokens}")
    if spread is not None and spread < 0:
        raise UsageError(f"{option.replace('tokens', 'spread')} must be >= 0")
    return LengthSpec(tokens, dist, tokens / 4 if spread is None else spread)


def workload_from_options(options: argparse.Namespace, rows: list[Any] | None) -> Workload:
    """The workload the options ask for; ``rows`` are the ``--data``/``--payload`` rows, if any."""
    sharegpt = getattr(options, "sharegpt", None)
    input_tokens = getattr(options, "input_tokens", None)
    if sharegpt and rows is not None:
        raise UsageError("give --sharegpt or --data/--payload, not both")
    if input_tokens is not None and (sharegpt or rows is not None):
        raise UsageError("--input-tokens makes synthetic prompts: not with --data, --payload or --sharegpt")
    output = length_spec(options.output_tokens, options.output_dist, options.output_spread, "--output-tokens")
    items = read_sharegpt(Path(sharegpt)) if sharegpt else items_from_rows(rows) if rows is not None else None
    inputs = None
    if input_tokens is not None:
        inputs = length_spec(input_tokens, options.input_dist, options.input_spread, "--input-tokens")
    prefix = getattr(options, "shared_prefix_tokens", None)
    if prefix is not None and prefix < 0:
        raise UsageError(f"--shared-prefix-tokens must be 0 or more, not {prefix}")
    items = controlled_items(options, items, inputs, rows is not None)
    popularity = getattr(options, "popularity", None)
    picker = None
    if popularity and items:
        picker = Picker(parse_popularity(popularity), len(items), int(getattr(options, "seed", None) or 0))
    return Workload(items, inputs, output, options.prompt, options.workload_seed, picker)


def controlled_items(
    options: argparse.Namespace, items: list[WorkItem] | None, inputs: LengthSpec | None, from_rows: bool
) -> list[WorkItem] | None:
    """The items as ``--distinct`` and ``--popularity`` need them: a payload set to choose from.
    Rows come varied already (`loadbench.scenario.helpers.Payloads`); ShareGPT's items and
    ``--prompt`` are varied here; ``--input-tokens`` makes K synthetic prompts once."""
    distinct = getattr(options, "distinct", None)
    if not (distinct or getattr(options, "popularity", None)):
        return items
    if items is None and inputs is not None:
        if not distinct:
            raise UsageError(
                "--popularity needs a payload set: with --input-tokens every prompt is new; add --distinct K"
            )
        rng = random.Random(options.workload_seed)
        return [WorkItem(prompt=synthetic_prompt(inputs.sample(rng), rng)) for _ in range(distinct)]
    if items is None:
        items = [WorkItem(prompt=options.prompt)]
    elif from_rows:
        return items
    return distinct_items(items, distinct) if distinct else items


def distinct_items(items: list[WorkItem], count: int) -> list[WorkItem]:
    """``count`` items from ``items``, cycling them, each past the first round with its last user
    text varied (`loadbench.protocols.variety.distinct_bodies`)."""
    bodies = [{"prompt": i.prompt} if i.messages is None else {"messages": i.messages} for i in items]
    varied = distinct_bodies(bodies, count)
    return [
        replace(items[n % len(items)], prompt=body.get("prompt"), messages=body.get("messages"))
        for n, body in enumerate(varied)
    ]


def shared_prefix(tokens: int, seed: int, count: Callable[[str], int | None] | None = None) -> str:
    """A system prompt of ``tokens`` tokens, the same for every request of a run (and every process
    of it: drawn from ``seed``): words of `VOCABULARY`, one token each without ``count``; with it
    (``--tokenizer``'s count of a text), the most words whose count is at most ``tokens``."""
    if tokens <= 0:
        return ""
    words = random.Random(f"shared-prefix-{seed}").choices(VOCABULARY, k=2 * tokens + 8)
    if count is None or count(" ".join(words[:tokens])) is None:
        return " ".join(words[:tokens])
    low, high = 0, len(words)  # the most words counted at most `tokens`: in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        counted = count(" ".join(words[:middle]))
        if counted is not None and counted <= tokens:
            low = middle
        else:
            high = middle - 1
    return " ".join(words[:low])
