"""Tests of quality under load and the real-time factor: loadbench.analyze.quality (confusion matrices by
hand), loadbench.protocols.media, the analyzer and report sections, the demo's POST /asr, and end to end
(``loadbench run --demo`` in a subprocess: this process never imports locust)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from helpers import read_json, run_cli, serving

from loadbench.analyze import analyzer, quality
from loadbench.data import AUDIO_DIR, AUDIO_FILES
from loadbench.demo.server import make_server
from loadbench.protocols.media import MediaError, wav_duration_s, write_tone_wav
from loadbench.record import rundir
from loadbench.record.records import RequestRecord, read_requests, write_requests
from loadbench.report.report import render_report

# ---------------------------------------------------------------------------------------------
# Pure quality math, against confusion matrices worked out by hand


def test_three_classes_one_never_predicted() -> None:
    # expected  a a a b b c
    # predicted a a b b a -      (the c request came back without a prediction)
    # a: TP 2, predicted 3, support 3 -> P 2/3, R 2/3, F1 2/3
    # b: TP 1, predicted 2, support 2 -> P 1/2, R 1/2, F1 1/2
    # c: TP 0, predicted 0, support 1 -> P 0 (never predicted), R 0, F1 0
    q = quality.quality_summary(list("aaabbc"), ["a", "a", "b", "b", "a", ""], [1] * 6)
    assert q is not None
    assert (q["n"], q["answered"], q["correct"]) == (6, 5, 3)
    assert q["accuracy"] == 0.5
    assert q["accuracy_answered"] == 0.6
    macro = round((2 / 3 + 1 / 2 + 0) / 3, 4)
    assert (q["precision"], q["recall"], q["f1"]) == (macro, macro, macro)
    assert q["classes"] == 3
    assert q["per_class"] == {
        "a": {"precision": 0.6667, "recall": 0.6667, "f1": 0.6667, "support": 3, "predicted": 3},
        "b": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2, "predicted": 2},
        "c": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 0},
    }


def test_failures_count_as_wrong_answers() -> None:
    # Every answer the server gave was right, but half the requests failed (timeouts, 5xx).
    # A failed request's prediction (if any) is ignored: it is predicted for no class.
    q = quality.quality_summary(["1", "1", "2", "2"], ["1", "1", "2", ""], [1, 0, 1, 0])
    assert q is not None
    assert (q["n"], q["answered"], q["correct"]) == (4, 2, 2)
    assert q["accuracy"] == 0.5  # quality drops under load
    assert q["accuracy_answered"] == 1.0  # the model itself did not get worse
    # class 1: TP 1, predicted 1, support 2 -> P 1, R 1/2, F1 2/3; class 2 the same.
    assert (q["precision"], q["recall"], q["f1"]) == (1.0, 0.5, 0.6667)
    assert q["per_class"]["1"]["predicted"] == 1


def test_all_failed() -> None:
    q = quality.quality_summary(["a", "b"], ["", ""], [0, 0])
    assert q is not None
    assert (q["n"], q["answered"], q["correct"], q["accuracy"]) == (2, 0, 0, 0.0)
    assert q["accuracy_answered"] is None
    assert (q["precision"], q["recall"], q["f1"]) == (0.0, 0.0, 0.0)


def test_a_predicted_class_never_expected() -> None:
    # x: TP 1, predicted 1, support 2 -> P 1, R 1/2, F1 2/3
    # y: TP 0, predicted 1, support 0 -> P 0, R 0 (no support), F1 0
    q = quality.quality_summary(["x", "x"], ["x", "y"], [1, 1])
    assert q is not None
    assert q["classes"] == 2
    assert (q["precision"], q["recall"], q["f1"]) == (0.5, 0.25, round((2 / 3) / 2, 4))
    assert q["per_class"]["y"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "predicted": 1}


def test_unlabeled_requests_are_left_out() -> None:
    assert quality.quality_summary(["", ""], ["a", "b"], [1, 1]) is None
    assert quality.quality_summary([], [], []) is None
    q = quality.quality_summary(["", "a", None], ["z", "a", "a"], [1, 1, 1])
    assert q is not None
    assert (q["n"], q["correct"], q["classes"]) == (1, 1, 1)  # "z" was predicted for an unlabeled one


def test_classes_in_natural_order_and_categoricals() -> None:
    expected = pd.Series(["10", "9", "2", "10", np.nan], dtype="category")
    predicted = pd.Series(["10", "9", "10", "", "2"], dtype="category")
    q = quality.quality_summary(expected, predicted, np.array([1, 1, 1, 1, 1], dtype=np.int8))
    assert q is not None
    assert list(q["per_class"]) == ["2", "9", "10"]
    assert (q["n"], q["answered"], q["correct"]) == (4, 3, 2)


def test_matches_scikit_learn_on_random_labels() -> None:
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(7)
    n = 2000
    expected = rng.integers(0, 6, n).astype(str)
    predicted = np.where(rng.random(n) < 0.7, expected, rng.integers(0, 8, n).astype(str))
    ok = rng.random(n) > 0.1
    predicted = np.where(rng.random(n) < 0.05, "", predicted)  # some answers without a prediction
    q = quality.quality_summary(expected, predicted, ok)
    assert q is not None
    answered = ok & (predicted != "")
    sentinel = np.where(answered, predicted, "<no answer>")
    labels = sorted(set(expected) | set(predicted[answered]), key=int)
    p, r, f, support = precision_recall_fscore_support(
        expected, sentinel, labels=labels, average=None, zero_division=0
    )
    assert q["precision"] == round(float(p.mean()), 4)
    assert q["recall"] == round(float(r.mean()), 4)
    assert q["f1"] == round(float(f.mean()), 4)
    assert [q["per_class"][c]["support"] for c in labels] == support.tolist()
    assert q["accuracy"] == round(float((answered & (expected == predicted)).sum() / n), 4)


def test_many_classes_are_capped_in_per_class() -> None:
    labels = [str(i) for i in range(120)] + ["7"] * 10
    q = quality.quality_summary(labels, labels, [1] * len(labels))
    assert q is not None
    assert q["classes"] == 120
    assert len(q["per_class"]) == quality.MAX_CLASSES_SHOWN
    assert "7" in q["per_class"]  # the most support comes first
    assert q["f1"] == 1.0


def test_accuracy_per_second() -> None:
    frame = quality.accuracy_per_second(
        [0.1, 0.5, 0.9, 1.2, 3.5, -0.5, 9.0],
        ["a", "b", "", "a", "a", "a", "a"],
        ["a", "a", "a", "a", "a", "a", "a"],
        [1, 1, 1, 0, 1, 1, 1],
        4,
    )
    assert frame["labeled"].tolist() == [2, 1, 0, 1]
    assert frame["answered"].tolist() == [2, 0, 0, 1]
    assert frame["correct"].tolist() == [1, 0, 0, 1]
    assert frame["accuracy"].tolist()[:2] == [0.5, 0.0]
    assert np.isnan(frame["accuracy"][2]) and np.isnan(frame["accuracy_answered"][1])
    assert frame["accuracy_answered"].tolist()[3] == 1.0


def test_macro_scores_rolling_by_hand() -> None:
    # second:    0    0    1    2    3    6
    # expected:  a    b    a    b    a    b
    # predicted: a    a    a    b    -    b (failed)
    frame = quality.macro_scores_rolling(
        [0.1, 0.5, 1.2, 2.5, 3.1, 6.5],
        ["a", "b", "a", "b", "a", "b"],
        ["a", "a", "a", "b", "", "b"],
        [1, 1, 1, 1, 1, 0],
        8,
        window_s=2,
    )
    assert frame["labeled"].tolist() == [2, 3, 2, 2, 1, 0, 1, 1]
    # Second 0: a TP 1, predicted 2, support 1 -> P 1/2, R 1, F1 2/3; b never predicted -> 0.
    assert frame.loc[0, ["precision", "recall", "f1"]].tolist() == pytest.approx([0.25, 0.5, 1 / 3])
    # Second 1 (window 0-1): a TP 2, predicted 3, support 2 -> P 2/3, R 1, F1 0.8; b 0.
    assert frame.loc[1, ["precision", "recall", "f1"]].tolist() == pytest.approx([1 / 3, 0.5, 0.4])
    # Second 2 (window 1-2): a and b both right.
    assert frame.loc[2, ["precision", "recall", "f1"]].tolist() == [1.0, 1.0, 1.0]
    # Second 3 (window 2-3): b right; a unanswered: recall 0, precision 0 (never predicted).
    assert frame.loc[3, ["precision", "recall", "f1"]].tolist() == [0.5, 0.5, 0.5]
    assert np.isnan(frame.loc[5, "f1"]) and frame.loc[6, "f1"] == 0.0  # a failure is wrong


def test_macro_scores_rolling_over_the_whole_run_match_the_summary() -> None:
    rng = np.random.default_rng(3)
    n = 300
    expected = rng.choice(list("abcd"), n)
    predicted = np.where(rng.random(n) < 0.7, expected, rng.choice(list("abcde"), n))
    ok = rng.random(n) < 0.9
    start = rng.uniform(0, 10, n)
    frame = quality.macro_scores_rolling(start, expected, predicted, ok, 10, window_s=10)
    q = quality.quality_summary(expected, predicted, ok)
    assert q is not None and frame["labeled"].iloc[-1] == n
    last = frame.iloc[-1]
    assert [round(last[k], 4) for k in ("precision", "recall", "f1")] == [
        q["precision"],
        q["recall"],
        q["f1"],
    ]


def test_quality_over_time_plots_accuracy_and_the_macro_scores() -> None:
    from matplotlib.patches import StepPatch

    from loadbench.report import plots_quality

    start = [0.2, 0.4, 1.5, 2.5, 3.5, 3.6]
    args = (["a", "b", "a", "b", "a", "b"], ["a", "a", "a", "b", "", "b"], [1, 1, 1, 1, 1, 1])
    per_second = quality.accuracy_per_second(start, *args, 4)
    rolling = quality.macro_scores_rolling(start, *args, 4, window_s=2)
    fig = plots_quality.quality_over_time(per_second, None, rolling, 2)
    by_label = {ax.get_ylabel(): ax for ax in fig.axes}
    top, bottom = by_label["accuracy"], by_label["macro, 2 s window"]

    def steps(ax: Any) -> dict[str, list[float]]:
        return {
            str(p.get_label()): np.asarray(p.get_data().values, dtype=float).tolist()
            for p in ax.patches
            if isinstance(p, StepPatch)
        }

    accuracy = steps(top)["accuracy (failures count wrong)"]
    assert accuracy == [0.5, 1.0, 1.0, 0.5]
    macro = steps(bottom)
    assert set(macro) == {"macro F1 (2 s)", "macro precision (2 s)", "macro recall (2 s)"}
    np.testing.assert_allclose(macro["macro F1 (2 s)"], rolling["f1"].to_numpy())
    np.testing.assert_allclose(macro["macro recall (2 s)"], rolling["recall"].to_numpy())
    assert macro["macro F1 (2 s)"][1] == pytest.approx(0.4)  # second 1: window 0-1, by hand above


# ---------------------------------------------------------------------------------------------
# Real-time factor


def test_rtf_summary() -> None:
    # 300 ms for 1 s, 1000 ms for 2 s, 3000 ms for 2 s, a failure, and one without media.
    rtf = quality.rtf_summary(
        [300.0, 1000.0, 3000.0, 100.0, 50.0], [1.0, 2.0, 2.0, 1.0, np.nan], [1, 1, 1, 0, 1]
    )
    assert rtf is not None
    assert rtf["n"] == 3 and rtf["failed"] == 1
    assert (rtf["p50"], rtf["max"]) == (0.5, 1.5)
    assert rtf["mean"] == round((0.3 + 0.5 + 1.5) / 3, 4)
    assert rtf["realtime_fraction"] == round(2 / 3, 6)
    assert rtf["p90"] == round(float(np.percentile([0.3, 0.5, 1.5], 90)), 4)


def test_rtf_exactly_real_time_is_not_faster() -> None:
    rtf = quality.rtf_summary([1000.0], [1.0], [1])
    assert rtf is not None and rtf["realtime_fraction"] == 0.0


def test_rtf_absent_or_all_failed() -> None:
    assert quality.rtf_summary([10.0], [np.nan], [1]) is None
    assert quality.rtf_summary([10.0], [0.0], [1]) is None
    rtf = quality.rtf_summary([10.0, 20.0], [1.0, 1.0], [0, 0])
    assert rtf == {
        "n": 0,
        "p50": None,
        "p90": None,
        "p99": None,
        "mean": None,
        "max": None,
        "realtime_fraction": None,
        "failed": 2,
    }


# ---------------------------------------------------------------------------------------------
# WAV files


def test_shipped_audio_is_what_the_generator_writes(tmp_path: Path) -> None:
    for name, seconds, frequency in AUDIO_FILES:
        shipped = AUDIO_DIR / name
        write_tone_wav(tmp_path / name, seconds, frequency)
        assert shipped.read_bytes() == (tmp_path / name).read_bytes()
        assert wav_duration_s(shipped) == seconds
        assert wav_duration_s(shipped.read_bytes()) == seconds
        assert shipped.stat().st_size < 40_000


def test_bad_audio_is_a_one_line_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really")
    with pytest.raises(MediaError, match="is not a PCM WAV file") as info:
        wav_duration_s(junk)
    assert "\n" not in str(info.value)
    with pytest.raises(MediaError, match="does not exist"):
        wav_duration_s(tmp_path / "missing.wav")
    with pytest.raises(MediaError, match="body is not a PCM WAV"):
        wav_duration_s(b"")


def test_demo_asr_takes_the_configured_factor() -> None:
    audio = (AUDIO_DIR / "tone-0.5s.wav").read_bytes()
    with serving(make_server(port=0, asr_rtf=0.2)) as url:
        t0 = time.perf_counter()
        response = httpx.post(f"{url}/asr", content=audio, headers={"Content-Type": "audio/wav"})
        elapsed = time.perf_counter() - t0
        assert response.status_code == 200
        assert response.json()["duration_s"] == 0.5
        assert elapsed >= 0.1  # 0.2 × 0.5 s of audio
        bad = httpx.post(f"{url}/asr", content=b"{}")
        assert bad.status_code == 400 and "WAV" in bad.json()["error"]
        assert httpx.get(f"{url}/asr").status_code == 405
        # The JSON routes still work after the body reader was split in two.
        assert httpx.post(f"{url}/predict", json={"inputs": [0] * 64}).status_code == 200


# ---------------------------------------------------------------------------------------------
# Analyzer and report on a run directory built by hand

STARTED = 1000.0


def _labeled(
    start: float, latency: float, expected: str, predicted: str | None, ok: bool = True
) -> RequestRecord:
    extras: dict[str, Any] = {"expected": expected}
    if predicted is not None:
        extras["predicted"] = predicted
    return RequestRecord(
        start, latency, "POST /predict", "POST", 200 if ok else 0, 10, ok, "" if ok else "TimeoutError: timed out",
        extras=extras,
    )  # fmt: skip


def _run(tmp_path: Path, records: list[RequestRecord]) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    meta = {
        "format": 1,
        "run_id": "run-quality",
        "target": "http://127.0.0.1:8000",
        "scenario": "json_post",
        "status": rundir.STATUS_COMPLETE,
        "started_unix_s": STARTED,
        "ended_unix_s": STARTED + 4.0,
        "settings": {"users": 2, "warmup_s": 1.0, "duration_s": 4},
    }
    rundir.write_json(run / rundir.META, meta)
    write_requests(run / rundir.REQUESTS, records)
    (run / rundir.USERS).write_text("unix_s,users\n1000.5,2\n")
    return run


def test_analyzer_and_report_sections(tmp_path: Path) -> None:
    records = [
        _labeled(1000.5, 5.0, "3", "8"),  # warmup: excluded
        _labeled(1001.1, 5.0, "3", "3"),
        _labeled(1001.5, 5.0, "3", "3"),
        _labeled(1002.2, 5.0, "5", "3"),
        _labeled(1002.7, 900.0, "5", None, ok=False),  # timed out: a wrong answer
        RequestRecord(1003.0, 250.0, "POST /asr", "POST", 200, 10, True, extras={"media_s": 0.5}),
        RequestRecord(1003.2, 3000.0, "POST /asr", "POST", 200, 10, True, extras={"media_s": 2.0}),
    ]
    run = _run(tmp_path, records)
    summary = analyzer.analyze_run(run)
    q = summary["quality"]
    assert (q["n"], q["answered"], q["correct"]) == (4, 3, 2)
    assert (q["accuracy"], q["accuracy_answered"]) == (0.5, 0.6667)
    # 3: TP 2, predicted 3, support 2 -> P 2/3, R 1, F1 0.8; 5: P 0, R 0, F1 0.
    assert (q["precision"], q["recall"], q["f1"]) == (0.3333, 0.5, 0.4)
    rtf = summary["rtf"]
    assert (rtf["n"], rtf["p50"], rtf["realtime_fraction"]) == (2, 1.0, 0.5)
    assert read_json(run / rundir.SUMMARY)["quality"]["n"] == 4

    html_path, md_path = render_report(run)
    page = html_path.read_text(encoding="utf-8")
    assert "<h2 id='quality'>Quality</h2>" in page and 'id="plot-quality-time"' in page
    assert "<h2 id='rtf'>Real-time factor</h2>" in page and 'id="plot-rtf"' in page
    assert "accuracy (failures count wrong)" in page and "macro F1, precision" in page
    md = md_path.read_text(encoding="utf-8")
    assert "**Quality**" in md and "| accuracy (failures count wrong) | 50.00 % |" in md
    assert "**Real-time factor**" in md


def test_runs_without_labels_have_no_sections(tmp_path: Path) -> None:
    records = [RequestRecord(1001.0 + i / 10, 5.0, "POST /predict", "POST", 200, 10, True) for i in range(10)]
    run = _run(tmp_path, records)
    summary = analyzer.analyze_run(run)
    assert "quality" not in summary and "rtf" not in summary
    html_path, md_path = render_report(run)
    assert "id='quality'" not in html_path.read_text(encoding="utf-8")
    assert "**Quality**" not in md_path.read_text(encoding="utf-8")


def test_open_loop_rtf_uses_service_time(tmp_path: Path) -> None:
    # Sent 0.5 s after it was due: latency counts from the due time, RTF from the send.
    late = RequestRecord(1002.0, 300.0, "POST /asr", "POST", 200, 10, True, intended_unix_s=1001.5)
    late.extras = {"media_s": 1.0}
    run = _run(tmp_path, [late])
    summary = analyzer.analyze_run(run)
    assert summary["latency_ms"]["p50"] == 800.0
    assert summary["rtf"]["p50"] == 0.3


def test_labels_survive_the_record_file(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    write_requests(path, [_labeled(1.0, 1.0, 'a, "b"', 'a, "b"')])
    frame = read_requests(path)
    q = quality.quality_summary(frame["expected"], frame["predicted"], frame["ok"].to_numpy())
    assert q is not None and q["correct"] == 1 and list(q["per_class"]) == ['a, "b"']


# ---------------------------------------------------------------------------------------------
# End to end: `loadbench run --demo` in a subprocess


@pytest.mark.e2e
def test_json_post_against_the_demo_measures_quality_out_of_the_box(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # Paced (5 ms an answer): the quality of the answers, not the throughput, is the subject; some
    # 1,500 labelled requests instead of the tens of thousands four unpaced users send.
    result = run_cli(
        "run", "--demo", "--demo-latency-ms", "5", "--scenario", "json_post", "-d", "3s", "--warmup", "1s",
        "-u", "4", "--quiet", "--no-sampler", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = read_json(out / rundir.SUMMARY)
    q = summary["quality"]
    assert q["n"] == summary["requests"]["total"] > 50
    assert q["accuracy"] >= 0.9 and q["f1"] >= 0.9
    assert q["classes"] == 10
    assert "rtf" not in summary
    assert "<h2 id='quality'>" in (out / rundir.REPORT).read_text(encoding="utf-8")


@pytest.mark.e2e
@pytest.mark.parametrize(("factor", "fraction"), [(0.3, 1.0), (1.5, 0.0)])
def test_asr_against_the_demo_measures_the_real_time_factor(
    tmp_path: Path, factor: float, fraction: float
) -> None:
    out = tmp_path / "run"
    result = run_cli(
        "run", "--demo", "--demo-asr-rtf", str(factor), "--scenario", "asr", "-d", "3s", "--warmup", "0.5s",
        "-u", "8", "--quiet", "--no-sampler", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = read_json(out / rundir.SUMMARY)
    rtf = summary["rtf"]
    assert rtf["n"] == summary["requests"]["ok"] > 0
    # The server holds each request factor x its audio's duration: the client cannot see less.
    # Above it, only the client's share, which a loaded machine stretches: bounded loosely, so a
    # unit slip (ms for s) still fails.
    assert factor <= rtf["p50"] < factor + 0.5
    assert rtf["realtime_fraction"] == fraction
    assert "quality" not in summary


@pytest.mark.e2e
def test_asr_rejects_a_file_that_is_not_wav(tmp_path: Path) -> None:
    bad = tmp_path / "speech.wav"
    bad.write_text("not audio")
    result = run_cli(
        "run", "--demo", "--scenario", "asr", "--audio", str(bad), "-d", "2s", "--warmup", "0s",
        "--out", str(tmp_path / "r"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "is not a PCM WAV file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
