"""A real OpenAI-compatible inference server: loadbench's ``openai_chat`` timings against a raw
client's, on a tiny randomly initialised Llama served by ``transformers serve`` on 127.0.0.1.

    python benchmarks/real_llm_server.py --server-python /tmp/realllm/bin/python
        [--max-tokens 32] [--duration 20] [--users 2] [--raw-requests 20]

The serving stack lives in its own virtualenv, never in loadbench's (docs/benchmarks.md, "A real
OpenAI-compatible server", has the set-up commands): ``--server-python`` is its interpreter.
Nothing is downloaded: the model is built here, offline, with that interpreter — a byte-level
BPE tokenizer trained on this repository's ASCII documentation, a chat template, and a 2-layer
``LlamaConfig`` (hidden size 64) with seeded random weights. Its generation config has no end
of sequence token and suppresses the two special tokens, so every request generates exactly
``max_tokens`` tokens, each of which decodes to text (one content event per token): the server
has no ``ignore_eos``/``min_tokens``, and needs none.

Steps, in order, one at a time (the CPU is shared: nothing else of ours runs at once):

1. ``transformers serve MODEL_DIR --host 127.0.0.1 --port P --device cpu`` (``HF_HUB_OFFLINE=1``,
   update check off, ``OMP_NUM_THREADS`` = ``--server-threads``); one warm-up request;
2. the raw client: ``--raw-requests`` streamed requests one after another over one keep-alive
   ``http.client`` connection, the same body loadbench sends (its default prompt, temperature 0,
   ``max_tokens``, ``stream_options.include_usage``). ``time.perf_counter()`` just before the
   request is written, and after each SSE line has been read (``readline`` returns as soon as
   the line's bytes are in); TTFT to the first ``data:`` line with non-empty
   ``delta.content``, gaps between such lines, end to end when the body has ended;
3. ``loadbench run --scenario openai_chat -u 1`` for ``--duration`` s, then ``-u --users``;
   figures from each run's ``summary.json``, per-request token counts from ``requests.csv``.

Prints a Markdown table for ``docs/benchmarks.md``: TTFT, mean ITL, TPOT and end-to-end (mean
and p50), requests, output tokens per request (``usage``) and content events per request.
Traffic goes to 127.0.0.1 only; every step has a time limit; the server is stopped at the end.

Exit codes: 0 done, 1 a step failed (its log path is printed), 2 bad options.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PROMPT = "Write one sentence about load testing."  # loadbench.protocols.workloads.DEFAULT_PROMPT
SERVER_START_S = 180.0  # importing torch and transformers on a busy 2-core machine is slow
STEP_TIMEOUT_S = 300.0

# Run by --server-python (torch and transformers are there, not in loadbench's venv).
BUILD_MODEL = r"""
import sys
from pathlib import Path
from typing import Any
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

out, repo = Path(sys.argv[1]), Path(sys.argv[2])
texts = [p.read_text(encoding="utf-8") for p in [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]]
# ASCII only: every token then decodes to whole characters, so each one is a content event.
texts = ["".join(c for c in t if c.isascii()) for t in texts]
tokenizer = Tokenizer(models.BPE())
tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tokenizer.decoder = decoders.ByteLevel()
tokenizer.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=1024, special_tokens=["<s>", "</s>"]))
fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>")
fast.chat_template = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant:{% endif %}"
)
fast.save_pretrained(out)
torch.manual_seed(0)
config = LlamaConfig(
    vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
    bos_token_id=0, eos_token_id=None,
)
model = LlamaForCausalLM(config)
# No end of sequence, special tokens never sampled: exactly max_tokens tokens of text.
model.generation_config = GenerationConfig(bos_token_id=0, eos_token_id=None, pad_token_id=1, suppress_tokens=[0, 1])
model.save_pretrained(out)
print(f"built {out}: vocabulary {len(fast)}, {sum(p.numel() for p in model.parameters())} parameters")
"""


class BenchError(Exception):
    """A step failed; the message says which and where its log is."""


@dataclass
class Timings:
    """One row of the table: per-request TTFT, gaps, e2e and token counts, in ms and tokens."""

    label: str
    requests: int = 0
    errors: int = 0
    ttft_ms: list[float] = field(default_factory=list)
    itl_ms: list[float] = field(default_factory=list)
    tpot_ms: list[float] = field(default_factory=list)
    e2e_ms: list[float] = field(default_factory=list)
    output_tokens: list[int] = field(default_factory=list)  # from usage
    content_events: list[int] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)  # tokens_source of loadbench's records
    summaries: list[dict[str, Any]] = field(default_factory=list)  # loadbench's summary.json, per run

    def add(self, ttft_ms: float, gaps_ms: list[float], e2e_ms: float, tokens: int | None) -> None:
        """One request: TTFT, its inter-token gaps, end to end, usage's completion tokens."""
        self.ttft_ms.append(ttft_ms)
        self.itl_ms += gaps_ms
        self.e2e_ms.append(e2e_ms)
        self.content_events.append(len(gaps_ms) + 1)
        if tokens is not None:
            self.output_tokens.append(tokens)
            if tokens > 1:
                # docs/metrics.md: TPOT = (e2e - TTFT) / (output tokens - 1)
                self.tpot_ms.append((e2e_ms - ttft_ms) / (tokens - 1))

    def merge(self, other: Timings) -> None:
        self.requests += other.requests
        self.errors += other.errors
        for name in (
            "ttft_ms",
            "itl_ms",
            "tpot_ms",
            "e2e_ms",
            "output_tokens",
            "content_events",
            "summaries",
        ):
            getattr(self, name).extend(getattr(other, name))
        self.sources |= other.sources

    def stat(self, metric: str, which: str) -> float | None:
        values: list[float] = getattr(self, metric)
        if not values:
            return None
        return statistics.fmean(values) if which == "mean" else statistics.median(values)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_model(server_python: str, model_dir: Path, log: Path) -> None:
    with log.open("w") as out:
        result = subprocess.run(
            [server_python, "-c", BUILD_MODEL, str(model_dir), str(REPO)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=server_env(1),
            timeout=STEP_TIMEOUT_S,
        )
    if result.returncode != 0:
        raise BenchError(f"building the model failed (exit {result.returncode}); see {log}")


def server_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    # Offline: no hub look-ups, no PyPI update check, no telemetry — only 127.0.0.1 traffic.
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HUB_DISABLE_UPDATE_CHECK="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        OMP_NUM_THREADS=str(threads),
    )
    return env


def pin_cpus() -> tuple[set[int] | None, set[int] | None, str]:
    """(client CPUs, server CPUs, a line saying so): the server alone on the last CPU, so that a
    client's own work never takes the server's CPU, whichever client it is."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None, "not pinned (one CPU): clients and server share it"
    return set(cpus[:-1]), {cpus[-1]}, f"server pinned to CPU {cpus[-1]}, clients to CPU(s) {cpus[:-1]}"


def start_server(
    server_python: str, model_dir: Path, port: int, threads: int, cpus: set[int] | None, log: Path
) -> subprocess.Popen[bytes]:
    command = [server_python, "-m", "transformers.cli.transformers", "serve", str(model_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--log-level", "warning"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=server_env(threads),
            # Pinned before exec: every thread torch starts inherits it.
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"transformers serve exited with code {process.returncode}; see {log}")
        try:
            status, _ = get(port, "/health", 2.0)
            if status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.5)
    stop_process(process)
    raise BenchError(f"transformers serve did not answer /health within {SERVER_START_S:g} s; see {log}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def get(port: int, path: str, timeout_s: float) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def request_body(model: str, max_tokens: int) -> bytes:
    """What loadbench's openai_chat sends by default (loadbench.scenario.llm.request_body, stream_completion)."""
    body = {
        "model": model,
        "temperature": 0.0,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    return json.dumps(body).encode()


def raw_stream(
    connection: http.client.HTTPConnection, body: bytes
) -> tuple[float, list[float], float, int | None]:
    """One streamed request: (TTFT ms, content-line arrival times after TTFT as ms from send, e2e
    ms, usage.completion_tokens)."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "text/event-stream",
        "Accept-Encoding": "identity",
    }
    sent_s = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", body=body, headers=headers)
    response = connection.getresponse()
    if response.status != 200:
        raise BenchError(f"raw client: HTTP {response.status}: {response.read()[:200]!r}")
    content_s: list[float] = []
    completion_tokens: int | None = None
    while True:
        line = response.readline()
        now_s = time.perf_counter()  # the line's bytes have just arrived
        if not line:
            break
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            continue
        chunk = json.loads(data)
        choices = chunk.get("choices") or [{}]
        if (choices[0].get("delta") or {}).get("content"):
            content_s.append(now_s)
        if isinstance(chunk.get("usage"), dict):
            completion_tokens = chunk["usage"].get("completion_tokens")
    end_s = time.perf_counter()
    if not content_s:
        raise BenchError("raw client: a stream carried no content")
    return (
        (content_s[0] - sent_s) * 1000.0,
        [(t - sent_s) * 1000.0 for t in content_s],
        (end_s - sent_s) * 1000.0,
        completion_tokens,
    )


def run_raw(port: int, model: str, max_tokens: int, count: int) -> Timings:
    timings = Timings("raw client, 1 user")
    body = request_body(model, max_tokens)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    deadline = time.monotonic() + STEP_TIMEOUT_S
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            ttft, arrivals_ms, e2e, tokens = raw_stream(connection, body)
            timings.requests += 1
            timings.add(ttft, [b - a for a, b in itertools.pairwise(arrivals_ms)], e2e, tokens)
    finally:
        connection.close()
    return timings


def run_loadbench(
    python: str, repo: Path, port: int, users: int, duration_s: int, max_tokens: int, out: Path
) -> Timings:
    command = [python, "-m", "loadbench", "run", "--target", f"http://127.0.0.1:{port}"]
    command += ["--scenario", "openai_chat", "-u", str(users), "-d", f"{duration_s}s", "--warmup", "2s"]
    command += ["--max-tokens", str(max_tokens), "--no-sampler", "--quiet", "--out", str(out), "--force"]
    command += ["--records", "csv"]  # the table reads requests.csv
    log = out.with_suffix(".log")
    with log.open("w") as output:
        result = subprocess.run(
            command, cwd=repo, stdout=output, stderr=subprocess.STDOUT, timeout=duration_s + STEP_TIMEOUT_S
        )
    summary_path = out / "summary.json"
    if result.returncode not in (0, 1) or not summary_path.exists():
        raise BenchError(f"loadbench run failed (exit {result.returncode}); see {log}")
    summary = json.loads(summary_path.read_text())
    timings = Timings(f"loadbench, {users} user{'s' if users > 1 else ''}")
    timings.requests = int(summary["requests"]["ok"])
    timings.errors = int(summary["requests"]["errors"])
    timings.summaries.append(summary)
    # The table's figures come from the per-request records (requests.csv, the measured window),
    # so that rounds pool; summary.json's own figures are printed under the table.
    failed_only = timings.requests == 0
    if failed_only:
        # Every request failed: a failed stream keeps its timings in requests.csv; show those.
        timings.label += " (failed requests' kept timings)"
    window_start = float(summary["window"]["start_unix_s"])
    with (out / "requests.csv").open(newline="") as rows:
        for row in csv.DictReader(rows):
            if float(row["start_unix_s"]) < window_start or not row["ttft_ms"]:
                continue  # warmup, or no content at all
            if row["ok"] != "1" and not failed_only:
                continue
            gaps = [float(gap) for gap in row["itl_ms"].split()]
            ttft, e2e = float(row["ttft_ms"]), float(row["latency_ms"])
            timings.add(ttft, gaps, e2e, int(row["output_tokens"]) if row["output_tokens"] else None)
            timings.sources.add(row["tokens_source"])
    if timings.errors:
        kinds = "; ".join(f"{e['count']}× {e['kind']}" for e in summary.get("errors", []))
        print(f"note: {timings.label}: {timings.errors} failed requests: {kinds}", file=sys.stderr)
    return timings


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def counts(values: list[int]) -> str:
    if not values:
        return "–"
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}–{high}"


def table(rows: list[Timings]) -> str:
    lines = [
        "| client | ok requests | failed | TTFT mean / p50 ms | ITL mean / p50 ms | TPOT mean ms | e2e mean ms "
        "| output tokens per request (usage) | content events per request |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row.label} | {row.requests} | {row.errors} "
            f"| {fmt(row.stat('ttft_ms', 'mean'))} / {fmt(row.stat('ttft_ms', 'p50'))} "
            f"| {fmt(row.stat('itl_ms', 'mean'))} / {fmt(row.stat('itl_ms', 'p50'))} "
            f"| {fmt(row.stat('tpot_ms', 'mean'))} | {fmt(row.stat('e2e_ms', 'mean'))} "
            f"| {counts(row.output_tokens)} | {counts(row.content_events)} |"
        )
    return "\n".join(lines)


def server_version(server_python: str) -> str:
    probe = "import torch, transformers; print(transformers.__version__, torch.__version__)"
    try:
        result = subprocess.run([server_python, "-c", probe], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return "?"
    return result.stdout.strip() or "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--server-python", required=True, help="python of the venv with torch and transformers[serving]"
    )
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens per answer (default 32)")
    parser.add_argument("--duration", type=int, default=20, help="seconds per loadbench run (default 20)")
    parser.add_argument("--users", type=int, default=2, help="users of the second loadbench run (default 2)")
    parser.add_argument(
        "--raw-requests", type=int, default=20, help="sequential raw-client requests (default 20)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="raw client then loadbench -u 1, this many times (default 2)"
    )
    parser.add_argument(
        "--server-threads", type=int, default=1, help="OMP_NUM_THREADS of the server (default 1)"
    )
    parser.add_argument(
        "--repo", type=Path, default=REPO, help="loadbench checkout to run (default: this one)"
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep model, logs and run dirs in this folder"
    )
    args = parser.parse_args()
    if not Path(args.server_python).exists():
        parser.error(f"--server-python {args.server_python}: no such file")
    if args.max_tokens < 2 or args.duration < 5 or args.raw_requests < 1 or args.users < 1 or args.rounds < 1:
        parser.error("need --max-tokens >= 2, --duration >= 5, and --raw-requests, --users, --rounds >= 1")

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="loadbench-real-llm-"))
    workdir.mkdir(parents=True, exist_ok=True)
    model_dir = workdir / "tiny-llama"
    port = free_port()
    process: subprocess.Popen[bytes] | None = None
    client_cpus, server_cpus, pinned = pin_cpus()
    raw = Timings("raw client, 1 user")
    single = Timings("loadbench, 1 user")
    rows = [raw, single]
    try:
        print(f"building the model in {model_dir} ...", file=sys.stderr)
        build_model(args.server_python, model_dir, workdir / "build.log")
        print(f"starting transformers serve on 127.0.0.1:{port}; {pinned} ...", file=sys.stderr)
        process = start_server(
            args.server_python, model_dir, port, args.server_threads, server_cpus, workdir / "serve.log"
        )
        if client_cpus:
            os.sched_setaffinity(0, client_cpus)  # this process, its raw client and its loadbench runs
        status, listed = get(port, "/v1/models", 10.0)
        models = [m.get("id") for m in json.loads(listed).get("data", [])] if status == 200 else []
        print(f"GET /v1/models: HTTP {status}, {models}", file=sys.stderr)
        model = str(model_dir)
        run_raw(port, model, args.max_tokens, 2)  # warm-up: first-request costs out of the figures
        # Alternated, so that a slow spell of the machine falls on both clients alike.
        for round_ in range(1, args.rounds + 1):
            print(f"round {round_}: raw client, then loadbench run -u 1 ...", file=sys.stderr)
            raw.merge(run_raw(port, model, args.max_tokens, args.raw_requests))
            run = run_loadbench(
                sys.executable,
                args.repo,
                port,
                1,
                args.duration,
                args.max_tokens,
                workdir / f"run-u1-{round_}",
            )
            single.label = run.label.replace("loadbench, 1 user", single.label)
            single.merge(run)
        if args.users > 1:
            print(f"loadbench run -u {args.users} ...", file=sys.stderr)
            rows.append(
                run_loadbench(
                    sys.executable,
                    args.repo,
                    port,
                    args.users,
                    args.duration,
                    args.max_tokens,
                    workdir / f"run-u{args.users}",
                )
            )
    except (BenchError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if process is not None:
            stop_process(process)

    print(
        f"transformers serve (transformers, torch: {server_version(args.server_python)}), tiny random Llama "
        f"(2 layers, hidden 64, vocabulary 1024), max_tokens {args.max_tokens}, server OMP_NUM_THREADS "
        f"{args.server_threads}; {args.rounds} rounds of {args.raw_requests} raw-client requests and a "
        f"{args.duration} s loadbench run (2 s warmup); {os.cpu_count()} CPUs, {pinned}\n"
    )
    print(table(rows))
    print()
    for metric, name in (("ttft_ms", "TTFT"), ("itl_ms", "ITL"), ("tpot_ms", "TPOT")):
        for which in ("mean", "p50"):
            a, b = single.stat(metric, which), raw.stat(metric, which)
            if a is not None and b is not None:
                print(f"- {name} {which}: loadbench − raw client = {a - b:+.2f} ms (1 user)")
    sources = sorted(single.sources | rows[-1].sources)
    print(f"- loadbench's token counts came from: {', '.join(sources) or '–'}")
    print("\nsummary.json of each loadbench run (means, ms):\n")
    for row in rows[1:]:
        for summary in row.summaries:
            means = ", ".join(
                f"{key} {fmt(summary[key]['mean'])}" for key in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms")
            )
            tokens = summary["tokens"]
            print(
                f"- {summary['load'].get('users', '?') if isinstance(summary.get('load'), dict) else '?'} user(s): "
                f"{summary['requests']['ok']} ok, {summary['requests']['errors']} failed; {means}; tokens "
                f"input_total {tokens['input_total']}, output_total {tokens['output_total']}, "
                f"output_per_s {fmt(tokens['output_per_s'])}"
            )
    if args.keep is None:
        print(f"(work files in {workdir})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
