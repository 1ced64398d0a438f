"""Token counts when the server sends no ``usage`` (docs/metrics.md, "Token counts"): prompt tokens
unknown (never 0) without ``--tokenizer``, counted exactly with one, and each count's source said,
per request and in the summary. A real `loadbench run` against tests/llm_server.py, with a
tokenizer built offline (tests/tiny_tokenizer.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from helpers import run_cli, serving
from llm_server import LLMTestServer
from tiny_tokenizer import BOS, build, count

from loadbench.record.columnar import read_run_requests
from loadbench.report.llm import UNKNOWN_INPUT

QUICK = ("-u", "1", "--warmup", "0s", "--quiet", "--no-sampler", "-d", "1s", "--model", "m")
PROMPT = "tell me a story about the quick brown fox"
# The counts, not the rate, are the subject: a 20 ms first token keeps the one user to tens of
# requests a second, so the second of load costs little CPU on either side.
TTFT_MS = 20


def run(server: LLMTestServer, out: Path, *args: str) -> tuple[pd.DataFrame, dict]:
    with serving(server) as url:
        result = run_cli("run", "--target", url, "--out", str(out), *QUICK, *args)
    assert result.returncode == 0, result.stderr
    return read_run_requests(out), json.loads((out / "summary.json").read_text())


def test_without_usage_prompt_tokens_are_unknown_never_0(tmp_path: Path) -> None:
    server = LLMTestServer(ttft_ms=TTFT_MS, itl_ms=1, tokens=4, mode="nousage")
    frame, summary = run(server, tmp_path / "run", "--scenario", "openai_completions", "--prompt", PROMPT)
    assert len(frame) >= 1 and frame["ok"].all()
    assert frame["input_tokens"].isna().all() and (frame["input_tokens_source"] == "").all()
    # Output tokens: the content events, counted, and said so.
    assert (frame["output_tokens"] == 4).all() and (frame["tokens_source"] == "counted").all()
    tokens = summary["tokens"]
    assert tokens["input_total"] is None and tokens["input_source"] is None
    assert tokens["output_total"] == 4 * len(frame) and tokens["output_source"] == "counted"
    assert any("input tokens of" in n and "--tokenizer" in n for n in summary["notices"])
    assert UNKNOWN_INPUT in (tmp_path / "run" / "report.html").read_text(encoding="utf-8")


def test_the_tokenizer_counts_a_completions_prompt(tmp_path: Path) -> None:
    path = build(tmp_path / "model")
    server = LLMTestServer(ttft_ms=TTFT_MS, itl_ms=1, tokens=4, mode="nousage")
    frame, summary = run(
        server,
        tmp_path / "run",
        "--scenario",
        "openai_completions",
        "--prompt",
        PROMPT,
        "--tokenizer",
        str(path),
    )
    expected = count(path, PROMPT, special=True)
    assert all(body["prompt"] == PROMPT for body in server.bodies)
    assert len(frame) >= 1 and (frame["input_tokens"] == expected).all()
    assert (frame["input_tokens_source"] == "tokenizer").all()
    tokens = summary["tokens"]
    assert (tokens["input_total"], tokens["input_source"]) == (expected * len(frame), "tokenizer")
    assert not any("input tokens of" in n for n in summary["notices"])


def test_the_tokenizer_counts_a_chat_prompt_through_its_template_and_usage_wins(tmp_path: Path) -> None:
    build(tmp_path / "model")
    rendered = f"{BOS}[INST] {PROMPT} [/INST]"
    server = LLMTestServer(ttft_ms=TTFT_MS, itl_ms=1, tokens=3, mode="nousage")
    frame, summary = run(
        server,
        tmp_path / "run",
        "--scenario",
        "openai_chat",
        "--prompt",
        PROMPT,
        "--tokenizer",
        str(tmp_path / "model"),
    )
    expected = count(tmp_path / "model" / "tokenizer.json", rendered, special=False)
    assert len(frame) >= 1 and (frame["input_tokens"] == expected).all()
    assert summary["tokens"]["input_source"] == "tokenizer"
    # A server that sends usage is believed: the tokenizer counts only what it left out.
    frame, summary = run(
        LLMTestServer(ttft_ms=TTFT_MS, itl_ms=1, tokens=3),
        tmp_path / "usage",
        "--scenario", "openai_chat", "--prompt", PROMPT, "--tokenizer", str(tmp_path / "model"),
    )  # fmt: skip
    assert (frame["input_tokens"] == 7).all() and (frame["input_tokens_source"] == "usage").all()
    assert summary["tokens"]["input_source"] == "usage" and summary["tokens"]["input_total"] == 7 * len(frame)


def test_a_tokenizer_that_cannot_count_is_bad_input(tmp_path: Path) -> None:
    build(tmp_path / "no-template", chat_template=None)
    with serving(LLMTestServer(ttft_ms=1, itl_ms=1, tokens=2)) as url:
        for args, said in (
            (("--tokenizer", str(tmp_path / "nowhere.json")), "no such file"),
            (("--tokenizer", str(tmp_path / "no-template")), "no chat template beside it"),
        ):
            result = run_cli("run", "--target", url, "--out", str(tmp_path / "run"), *QUICK, "--scenario",
                             "openai_chat", *args)  # fmt: skip
            assert result.returncode == 2, result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and said in lines[0], result.stderr
            assert not (tmp_path / "run").exists()
