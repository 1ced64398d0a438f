"""Speech recognition, or any endpoint that takes a media file: POST WAV bytes, record their duration.

    loadbench run --target URL --scenario asr [--path /asr] [--audio DIR_OR_FILE ...]
    loadbench run --demo --scenario asr [--demo-asr-rtf 0.3]
    locust -f scenarios/asr.py --host URL [same options]

Each request's body is one WAV file, in turn (round-robin), sent as ``Content-Type: audio/wav``
(``--content-type``). Its duration (frames / frame rate, read from the WAV header) goes to
``requests.csv`` as ``media_s``, so the report gives the real-time factor: processing time /
audio duration (docs/metrics.md). ``--audio`` takes WAV files or folders of them (repeatable);
the default is the short tones shipped in ``loadbench/data/audio/``, which fit the demo's
``POST /asr``. A response is a success when its status is below 400.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from locust import events, task

import loadbench.ui.hook  # noqa: F401 - loadbench's tab in plain locust's web UI
from loadbench.data import AUDIO_DIR
from loadbench.errors import UsageError
from loadbench.protocols.media import MediaError, wav_duration_s
from loadbench.scenario import EXTRAS_KEY, ModelUser, add_request_options, on_setup

AUDIO: list[tuple[bytes, float]] = []
_CYCLE: Iterator[tuple[bytes, float]] | None = None


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    # Not in the web UI's start form: a query string may carry an api key (shown there in clear).
    parser.add_argument(
        "--path", default="/asr", help="URL path to POST to (default /asr)", include_in_web_ui=False
    )
    parser.add_argument(
        "--audio",
        action="append",
        default=[],
        metavar="DIR_OR_FILE",
        help="WAV file, or folder of *.wav files, to send (repeatable; default: loadbench/data/audio)",
    )
    parser.add_argument(
        "--content-type", default="audio/wav", help="Content-Type of the requests (default audio/wav)"
    )
    add_request_options(parser)


def audio_files(paths: list[str]) -> list[Path]:
    """The WAV files named: files as given, folders' ``*.wav`` in name order."""
    files: list[Path] = []
    for text in paths or [str(AUDIO_DIR)]:
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() == ".wav" and p.is_file())
            if not found:
                raise UsageError(f"--audio {text}: the folder holds no .wav file")
            files += found
        else:
            files.append(path)
    return files


def load_audio(paths: list[str]) -> list[tuple[bytes, float]]:
    """(WAV bytes, duration in s) of every file; a missing or non-WAV file is a one-line error."""
    out = []
    for path in audio_files(paths):
        duration_s = wav_duration_s(path)  # MediaError: missing, unreadable, not a WAV
        if duration_s <= 0:
            raise MediaError(f"audio file {path} holds no audio (0 frames)")
        out.append((path.read_bytes(), duration_s))
    return out


@on_setup
def _load(environment: Any) -> None:
    global AUDIO, _CYCLE
    options = environment.parsed_options
    if getattr(options, "payload", None) or getattr(options, "data", None):
        raise UsageError(
            "the asr scenario sends WAV files: give --audio DIR_OR_FILE, not --payload or --data"
        )
    AUDIO = load_audio(options.audio)
    _CYCLE = itertools.cycle(AUDIO)


class AsrUser(ModelUser):
    @task
    def transcribe(self) -> None:
        assert _CYCLE is not None
        audio, media_s = next(_CYCLE)
        options = self.environment.parsed_options
        path = options.path
        self.client.post(
            path,
            data=audio,
            headers={"Content-Type": options.content_type, **self.headers},
            name=f"POST {path.split('?', 1)[0]}",
            context={EXTRAS_KEY: {"media_s": media_s}},
        )
