"""Data files shipped with loadbench."""

from __future__ import annotations

from pathlib import Path

# The demo endpoint's held-out digits test set: one /predict body per line, label in "_expected".
DIGITS_JSONL = Path(__file__).with_name("digits.jsonl")
# The same rows as Open Inference Protocol v2 bodies (kserve_v2, the demo's model variants).
DIGITS_V2_JSONL = Path(__file__).with_name("digits_v2.jsonl")
# Short WAV files (8 kHz mono 16-bit tones of 0.5, 1 and 2 s) for the asr scenario and the demo's
# POST /asr; made by `loadbench.protocols.media.write_tone_wav` (tests/analyze/test_quality.py checks they match).
AUDIO_DIR = Path(__file__).with_name("audio")
AUDIO_FILES = (("tone-0.5s.wav", 0.5, 440.0), ("tone-1s.wav", 1.0, 660.0), ("tone-2s.wav", 2.0, 330.0))
