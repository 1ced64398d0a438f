"""An incremental Server-Sent Events parser: bytes as they arrive in, whole events out.

Pure (no Locust, no I/O). Feed it the body of a ``text/event-stream`` response in pieces of
any size — a piece may end in the middle of a line, of a CRLF or of a UTF-8 character — and
each call returns the events that the piece completed. Follows the WHATWG rules that matter
for LLM streams:

- lines end in LF, CRLF or CR; an empty line ends (dispatches) an event;
- ``data:`` lines are joined with ``\\n``; one space after the colon is dropped;
- ``event:`` and ``id:`` are kept; ``retry:`` and comments (lines starting with ``:``) are
  ignored; so are unknown fields, which are counted (`SSEParser.unknown_fields`);
- a line that is not valid UTF-8, or has no colon and is no known field name, is counted in
  `SSEParser.malformed_lines` and skipped: never fatal;
- an event whose data is ``[DONE]`` (OpenAI's end marker) sets `SSEParser.done`.

An event with no ``data:`` line is not dispatched (as in browsers). `SSEParser.close` returns
the event left unterminated when the stream ended without a final blank line.
"""

from __future__ import annotations

from dataclasses import dataclass

DONE_MARKER = "[DONE]"
# A line longer than this without a line end is junk, not SSE: keep memory bounded.
MAX_LINE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its joined data lines, its ``event:`` type and ``id:``."""

    data: str
    event: str = "message"
    id: str | None = None

    @property
    def is_done(self) -> bool:
        """True for OpenAI's ``data: [DONE]`` end marker."""
        return self.data.strip() == DONE_MARKER


class SSEParser:
    """Feed bytes with `feed`; it returns the events each call completes, in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._pending_cr = False  # the last piece ended in CR: an LF opening the next one belongs to it
        self.events = 0  # events dispatched so far
        self.malformed_lines = 0  # undecodable, or no colon and no known field name
        self.unknown_fields = 0  # well-formed lines with a field SSE does not define
        self.done = False  # a data: [DONE] event arrived
        self.bytes_fed = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Add the next piece of the body; return the events it completes."""
        self.bytes_fed += len(chunk)
        if self._pending_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._pending_cr = False
        if not chunk:
            return []
        self._buffer += chunk
        events: list[SSEEvent] = []
        start = 0
        buffer = self._buffer
        end = len(buffer)
        while start < end:
            lf = buffer.find(b"\n", start)
            cr = buffer.find(b"\r", start, lf if lf >= 0 else end)
            if cr >= 0:
                line_end, next_start = cr, cr + 1
                if next_start < end and buffer[next_start] == 0x0A:
                    next_start += 1
                elif next_start == end:
                    self._pending_cr = True  # maybe the CR of a CRLF split across pieces
            elif lf >= 0:
                line_end, next_start = lf, lf + 1
            else:
                break
            event = self._line(bytes(buffer[start:line_end]))
            if event is not None:
                events.append(event)
            start = next_start
        del buffer[:start]
        if len(buffer) > MAX_LINE_BYTES:
            self.malformed_lines += 1
            buffer.clear()
        return events

    def close(self) -> list[SSEEvent]:
        """The stream ended: the unterminated last line and event, if any (a clean stream has none)."""
        events: list[SSEEvent] = []
        if self._buffer:
            event = self._line(bytes(self._buffer))
            self._buffer.clear()
            if event is not None:
                events.append(event)
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _line(self, raw: bytes) -> SSEEvent | None:
        if not raw:
            return self._dispatch()
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.malformed_lines += 1
            return None
        if line.startswith(":"):
            return None  # a comment (servers send them as keep-alives)
        field, colon, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._id = value
        elif field == "retry":
            pass  # reconnection delay: loadbench never reconnects
        elif colon:
            self.unknown_fields += 1
        else:
            self.malformed_lines += 1
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent("\n".join(self._data), self._event or "message", self._id)
        self._data.clear()
        self._event = ""
        self.events += 1
        if event.is_done:
            self.done = True
        return event
