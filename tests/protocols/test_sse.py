"""The incremental SSE parser (loadbench.protocols.sse): events come out whole however the bytes are cut."""

from __future__ import annotations

import pytest

from loadbench.protocols.sse import SSEEvent, SSEParser

STREAM = (
    b": keep-alive\r\n"
    b'data: {"a": 1}\r\n\r\n'
    b"event: token\n"
    b"id: 7\n"
    b"data: line one\n"
    b"data:line two\n\n"
    b"retry: 100\n"
    b"data: caf\xc3\xa9\r\r"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent('{"a": 1}'),
    SSEEvent("line one\nline two", "token", "7"),
    SSEEvent("café", "message", "7"),
    SSEEvent("[DONE]", "message", "7"),
]


def parse(pieces: list[bytes]) -> tuple[list[SSEEvent], SSEParser]:
    parser = SSEParser()
    events = [e for piece in pieces for e in parser.feed(piece)]
    return events + parser.close(), parser


def test_whole_stream() -> None:
    events, parser = parse([STREAM])
    assert events == EXPECTED
    assert parser.done and parser.events == 4 and parser.malformed_lines == 0
    assert parser.bytes_fed == len(STREAM)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 16])
def test_any_chunk_boundaries(size: int) -> None:
    # Cuts fall inside lines, CRLFs and the two bytes of "é".
    events, parser = parse([STREAM[i : i + size] for i in range(0, len(STREAM), size)])
    assert events == EXPECTED
    assert parser.malformed_lines == 0


def test_every_single_cut() -> None:
    for cut in range(len(STREAM) + 1):
        events, _ = parse([STREAM[:cut], STREAM[cut:]])
        assert events == EXPECTED, cut


def test_events_come_out_as_soon_as_complete() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: x\n") == []
    assert parser.feed(b"\n") == [SSEEvent("x")]
    assert parser.feed(b"data: y\r") == []
    assert parser.feed(b"\n\r\n") == [SSEEvent("y")]  # the CRLF split across pieces is one line end


def test_malformed_lines_are_counted_not_fatal() -> None:
    events, parser = parse([b"nocolon\n\xff\xfe bad utf-8\nwhatever: 1\ndata: ok\n\n: comment only\n\n"])
    assert events == [SSEEvent("ok")]
    assert parser.malformed_lines == 2 and parser.unknown_fields == 1
    assert not parser.done


def test_no_data_no_event_and_unterminated_tail() -> None:
    parser = SSEParser()
    assert parser.feed(b"event: ping\n\nid: 1\n\n") == []
    assert parser.feed(b"data: tail") == []
    assert parser.close() == [SSEEvent("tail", id="1")]


def test_data_field_without_colon_and_space_rules() -> None:
    events, _ = parse([b"data\ndata:  two spaces\n\n"])
    assert events == [SSEEvent("\n two spaces")]


def test_done_marker() -> None:
    events, parser = parse([b"data: [DONE]\n\n"])
    assert events[0].is_done and parser.done
