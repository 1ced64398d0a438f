"""Tests of loadbench.protocols.extract: JSON paths, label text, payload metadata, predictions of responses."""

from __future__ import annotations

from typing import Any

import pytest

from loadbench.errors import UsageError
from loadbench.protocols.extract import (
    DEFAULT_PATHS,
    Extractor,
    extract,
    label_text,
    parse_path,
    payload_extras,
    response_prediction,
)


def test_parse_path_splits_on_dots() -> None:
    assert parse_path("outputs.0.data.0") == ("outputs", "0", "data", "0")
    assert parse_path("prediction") == ("prediction",)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (".a", "segment 1 is empty"),
        ("a.", "segment 2 is empty"),
        ("a..b", "segment 2 is empty"),
        ("a b", "whitespace"),
        (" a", "whitespace"),
    ],
)
def test_bad_paths_are_one_line_usage_errors(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=says) as info:
        parse_path(text)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("--extract")


BODY = {
    "predictions": [7, 3],
    "outputs": [{"name": "o", "data": [[1, 2], [3, 4]]}],
    "0": "key zero",
    "nested": {"label": None, "x": {"y": "deep"}},
}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("predictions.0", 7),
        ("predictions.1", 3),
        ("predictions.-1", 3),
        ("outputs.0.data.1.0", 3),
        ("0", "key zero"),  # an object's key that looks like an index is still its key
        ("nested.x.y", "deep"),
        ("predictions", [7, 3]),
        ("predictions.2", None),  # out of range
        ("predictions.-3", None),
        ("predictions.first", None),  # not an index of a list
        ("nested.label", None),  # null
        ("nested.x.y.z", None),  # through a string
        ("missing", None),
    ],
)
def test_extract(path: str, value: Any) -> None:
    assert extract(BODY, parse_path(path)) == value


def test_extract_from_non_objects() -> None:
    assert extract([5, 6], parse_path("1")) == 6
    assert extract("text", parse_path("a")) is None
    assert extract(None, parse_path("a")) is None


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (7, "7"),
        (7.0, "7"),
        (7.5, "7.5"),
        ("7", "7"),
        (" cat \n", "cat"),
        (True, "true"),
        (False, "false"),
        (None, ""),
        ([1, 2], "[1,2]"),
        ({"a": "é"}, '{"a":"é"}'),
    ],
)
def test_label_text(value: Any, text: str) -> None:
    assert label_text(value) == text


def test_default_extractor_takes_the_first_path_present() -> None:
    extractor = Extractor(None)
    assert not extractor.explicit
    assert extractor({"predictions": [4], "probabilities": [[0.1]]}) == "4"
    assert extractor({"label": "cat", "predictions": [4]}) == "4"  # predictions.0 comes first
    assert extractor({"prediction": 2.0, "label": "cat"}) == "2"
    assert extractor({"outputs": [{"data": [9, 1]}]}) == "9"
    assert extractor({"nothing": 1}) == ""
    assert extractor({"prediction": None, "label": "dog"}) == "dog"  # null is no answer
    assert DEFAULT_PATHS[0] == "prediction"


def test_explicit_extractor() -> None:
    extractor = Extractor("result.class")
    assert extractor.explicit
    assert extractor({"result": {"class": "spam"}, "prediction": "ham"}) == "spam"
    assert extractor({"prediction": "ham"}) == ""
    with pytest.raises(UsageError):
        Extractor("result..class")


def test_payload_extras() -> None:
    assert payload_extras({}) == {}
    assert payload_extras({"_expected": 3}) == {"expected": "3"}
    assert payload_extras({"_expected": "yes", "_media_s": 2}) == {"expected": "yes", "media_s": 2.0}
    assert payload_extras({"_expected": None, "_other": 1}) == {}
    for bad in (0, -1, "2", True, float("inf"), [1]):
        with pytest.raises(UsageError, match="_media_s must be a positive number"):
            payload_extras({"_media_s": bad})


class FakeResponse:
    def __init__(self, status: int, body: Any, exception: BaseException | None = None) -> None:
        self.status_code = status
        self._body = body
        self.request_meta: dict[str, Any] = {"exception": exception, "context": {}}

    def json(self) -> Any:
        if isinstance(self._body, Exception):
            raise self._body
        return self._body


def test_response_prediction() -> None:
    extractor = Extractor(None)
    assert response_prediction(FakeResponse(200, {"predictions": [1]}), extractor) == "1"
    assert response_prediction(FakeResponse(200, {"other": 1}), extractor) == ""
    assert response_prediction(FakeResponse(500, {"predictions": [1]}), extractor) is None
    assert response_prediction(FakeResponse(0, None), extractor) is None
    assert response_prediction(FakeResponse(200, ValueError("not JSON")), extractor) is None
    failed = FakeResponse(200, {"predictions": [1]}, exception=TimeoutError("timed out"))
    assert response_prediction(failed, extractor) is None
