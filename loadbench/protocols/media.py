"""Media durations for the real-time factor: WAV headers read with the standard ``wave`` module.

`wav_duration_s` gives the duration of a WAV file or of WAV bytes (frames / frame rate, from the
header; nothing is decoded); anything that is not a readable PCM WAV is a one-line `MediaError`.
`write_tone_wav` writes the small deterministic test files shipped in ``loadbench/data/audio/``.
Pure apart from the file it is pointed at: no locust.
"""

from __future__ import annotations

import io
import math
import struct
import wave
from pathlib import Path

from loadbench.errors import LoadbenchError


class MediaError(LoadbenchError):
    """A media file (or body) whose duration cannot be read."""


def wav_duration_s(source: bytes | Path) -> float:
    """Duration in seconds of a WAV file or WAV bytes: frames / frame rate, from the header."""
    what = f"{source}" if isinstance(source, Path) else "body"
    try:
        handle = wave.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise MediaError(f"audio file {what} does not exist") from None
    except (wave.Error, EOFError, struct.error) as exc:
        raise MediaError(f"{what} is not a PCM WAV file ({exc or type(exc).__name__})") from None
    except OSError as exc:
        raise MediaError(f"cannot read audio file {what}: {exc.strerror or exc}") from None
    with handle:
        rate, frames = handle.getframerate(), handle.getnframes()
    if rate <= 0:
        raise MediaError(f"{what} is not a usable WAV file (frame rate {rate})")
    return frames / rate


def write_tone_wav(path: Path, seconds: float, frequency_hz: float, rate: int = 8000) -> None:
    """A mono 16-bit sine tone at half scale: the same bytes every time."""
    frames = round(seconds * rate)
    samples = (round(16383 * math.sin(2 * math.pi * frequency_hz * i / rate)) for i in range(frames))
    data = b"".join(struct.pack("<h", s) for s in samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(data)
