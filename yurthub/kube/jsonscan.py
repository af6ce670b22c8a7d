"""JSON scanning for the streaming decoders: where a value ends, and its exact bytes.

Two buffers with one interface, used by ``framing``. ``TextBuffer`` (stdlib) decodes values
with json's C scanner at an index. ``BytesBuffer`` (msgspec) skips values without building
them. Both tell apart a value that is incomplete (wait for more bytes) from an invalid one
(DecodeError), so a torn body is never mistaken for a whole one.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

from yurthub.errors import DecodeError

try:
    import msgspec
except ImportError:  # Debian 12 packages no msgspec; the stdlib path is complete without it
    msgspec = None  # type: ignore[assignment, unused-ignore]

_WS = re.compile(r"[ \t\n\r]*")
_WS_BYTES = re.compile(rb"[ \t\n\r]*")
_TRAILING = re.compile(r"trailing characters \(byte (\d+)\)")
_AT_BYTE = re.compile(r"\(byte (\d+)\)")
# json reports a truncated token at most this many characters before the end of the buffer
# ("tru", "-Infinit", a cut "\u12" escape); an unterminated string says so in its message.
_NEAR_END = 16
# TextBuffer scans a value this close to the end of its buffer in a copy of the tail.
_TAIL = 8192
_NUMBER_START = frozenset(b"-0123456789")


def _trailing_bias() -> int | None:
    """How far past the first trailing byte msgspec's error offset points (1 in 0.18-0.22).

    The msgspec path finds where a value ends from that offset, so it is measured rather
    than assumed. None (msgspec missing or its message changed) means the stdlib path is used.
    """
    if msgspec is None:
        return None
    try:
        msgspec.json.decode(b'"a",', type=msgspec.Raw)
    except msgspec.DecodeError as e:
        m = _TRAILING.search(str(e))
        return int(m.group(1)) - 3 if m else None
    return None


_BIAS = _trailing_bias()
HAVE_MSGSPEC = _BIAS is not None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def scanner() -> Any:
    """json's C scanner: parses one value at an index, without the whole-document checks."""
    return json.JSONDecoder(parse_constant=_reject_constant).scan_once  # type: ignore[attr-defined]


def skip_ws(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()  # type: ignore[union-attr]  # always matches


def too_deep_to_decode() -> DecodeError:
    """What a value that nests deeper than the decoders recurse is (RecursionError there).

    kube-apiserver serves objects up to 10,000 levels deep (a custom resource that keeps
    unknown fields may nest that far); Python's decoders stop near the interpreter's
    recursion limit, before that.  Such an object passes to the client untouched, but the
    hub cannot read it: it is not cached, filtered or answered from, and nothing crashes."""
    return DecodeError("a JSON value nests too deep to decode here (exceeded max depth)")


def decode_object(raw: bytes) -> dict[str, Any]:
    """One complete JSON object (msgspec when available); DecodeError otherwise."""
    try:
        obj = msgspec.json.decode(raw) if HAVE_MSGSPEC else json.loads(raw)
    except ValueError as e:  # json.JSONDecodeError and msgspec.DecodeError both are
        raise DecodeError(f"invalid JSON object: {e}") from e
    except RecursionError as e:
        raise too_deep_to_decode() from e
    if not isinstance(obj, dict):
        raise DecodeError("expected a JSON object")
    return obj


def object_members(text: str, scan: Any = None) -> dict[str, tuple[Any, int, int]]:
    """key -> (value, start, end) for each member of the complete JSON object ``text``.

    ``scan`` is a ``scanner()`` to reuse; one per caller, as a scanner keeps state per call.
    """
    scan = scan or scanner()
    members: dict[str, tuple[Any, int, int]] = {}
    try:
        pos = skip_ws(text, 0)
        if text[pos:pos + 1] != "{":
            raise DecodeError("not a JSON object")
        pos = skip_ws(text, pos + 1)
        sep = text[pos:pos + 1]
        if sep == "}":
            pos += 1
        while sep != "}":
            key, pos = scan(text, pos)
            pos = skip_ws(text, pos)
            if not isinstance(key, str) or text[pos:pos + 1] != ":":
                raise DecodeError("malformed JSON object")
            start = skip_ws(text, pos + 1)
            value, pos = scan(text, start)
            members[key] = (value, start, pos)
            pos = skip_ws(text, pos)
            sep, pos = text[pos:pos + 1], skip_ws(text, pos + 1)
            if sep not in (",", "}"):
                raise DecodeError("malformed JSON object")
        if text[pos:].strip():
            raise DecodeError("data after the JSON object")
    except RecursionError as e:
        raise too_deep_to_decode() from e
    except StopIteration as e:
        raise DecodeError(f"invalid JSON: {e!r}") from e
    except ValueError as e:
        raise DecodeError(f"invalid JSON: {e}") from e
    return members


class TextBuffer:
    """stdlib backend: a str buffer scanned by the json module's C scanner."""

    def __init__(self) -> None:
        self.buf = ""
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._scan = scanner()

    def extend(self, data: bytes, final: bool) -> None:
        try:
            text = self._utf8.decode(data, final)
        except UnicodeDecodeError as e:
            raise DecodeError(f"body is not UTF-8: {e.reason}") from e
        self.buf = self.buf + text if self.buf else text

    def drop(self, pos: int) -> None:
        self.buf = self.buf[pos:]

    def whole_chars(self) -> bool:
        """True when no partial UTF-8 character waits in the decoder."""
        return not self._utf8.getstate()[0]

    def char(self, pos: int) -> str:
        return self.buf[pos:pos + 1]

    def skip(self, pos: int) -> int:
        return _WS.match(self.buf, pos).end()  # type: ignore[union-attr]  # always matches

    def value(self, pos: int, final: bool) -> tuple[Any, int] | None:
        """(value, end) of the JSON value at pos; None while it may still be incomplete."""
        if pos > _TAIL and len(self.buf) - pos <= _TAIL:
            # Near the end, often an item the next chunk completes: json's error for it
            # counts the newlines of everything before it (JSONDecodeError's lineno), a
            # pass over the whole buffer, once per chunk.  A copy of the tail costs less.
            got = self._value(self.buf[pos:], 0, final)
            return None if got is None else (got[0], got[1] + pos)
        return self._value(self.buf, pos, final)

    def _value(self, buf: str, pos: int, final: bool) -> tuple[Any, int] | None:
        try:
            obj, end = self._scan(buf, pos)
        except StopIteration as e:
            where, msg = e.value, "Expecting value"
        except json.JSONDecodeError as e:
            where, msg = e.pos, e.msg
        except RecursionError as e:
            raise too_deep_to_decode() from e
        except ValueError as e:
            raise DecodeError(f"invalid JSON: {e}") from e
        else:
            if end == len(buf) and not final and type(obj) in (int, float):
                return None  # the number may go on in the next chunk
            return obj, end
        if where >= len(buf) - _NEAR_END or msg.startswith("Unterminated"):
            if not final:
                return None
            raise DecodeError("body ended inside a JSON value (torn)")
        raise DecodeError(f"invalid JSON: {msg}")

    def item(self, pos: int, final: bool) -> tuple[dict[str, Any] | None, int] | None:
        """(decoded object, end) of the object at pos; None while it may be incomplete."""
        got = self.value(pos, final)
        if got is None:
            return None
        if not isinstance(got[0], dict):
            raise DecodeError("list item is not a JSON object")
        return got

    def raw(self, start: int, end: int) -> bytes:
        return self.buf[start:end].encode()


class BytesBuffer:
    """msgspec backend: a bytes buffer; values are skipped, not built, to find their end."""

    def __init__(self) -> None:
        self.buf = b""
        self._utf8 = codecs.getincrementaldecoder("utf-8")()  # validation only
        self._skip_value = msgspec.json.Decoder(msgspec.Raw).decode

    def extend(self, data: bytes, final: bool) -> None:
        try:
            if not data.isascii() or self._utf8.getstate()[0]:
                self._utf8.decode(data, final)  # msgspec does not check what it skips
            elif final:
                self._utf8.decode(b"", True)
        except UnicodeDecodeError as e:
            raise DecodeError(f"body is not UTF-8: {e.reason}") from e
        self.buf = self.buf + data if self.buf else data

    def drop(self, pos: int) -> None:
        self.buf = self.buf[pos:]

    def whole_chars(self) -> bool:
        """True when no partial UTF-8 character waits in the validating decoder."""
        return not self._utf8.getstate()[0]

    def char(self, pos: int) -> str:
        return self.buf[pos:pos + 1].decode("latin-1")

    def skip(self, pos: int) -> int:
        return _WS_BYTES.match(self.buf, pos).end()  # type: ignore[union-attr]

    def end_of(self, pos: int, final: bool) -> int | None:
        buf = self.buf
        try:
            self._skip_value(memoryview(buf)[pos:])
        except RecursionError as e:
            raise too_deep_to_decode() from e
        except msgspec.DecodeError as e:
            msg = str(e)
            m = _TRAILING.search(msg)
            if m is None:
                # A cut number ("-", "3e") is "invalid" at the very end; anything else cut
                # short is "truncated". Only an error well before the end is a real one.
                at = _AT_BYTE.search(msg)
                if "truncated" not in msg and not (
                        at and pos + int(at.group(1)) >= len(buf) - _NEAR_END):
                    raise DecodeError(f"invalid JSON: {msg}") from e
                if final:
                    raise DecodeError("body ended inside a JSON value (torn)") from e
                return None
            end = pos + int(m.group(1)) - (_BIAS or 0)
        else:
            if not final and buf[pos] in _NUMBER_START:
                return None  # the number may go on in the next chunk
            end = len(buf)
        while buf[end - 1] in b" \t\r\n":
            end -= 1
        return end

    def value(self, pos: int, final: bool) -> tuple[Any, int] | None:
        end = self.end_of(pos, final)
        if end is None:
            return None
        try:
            return msgspec.json.decode(self.buf[pos:end]), end
        except RecursionError as e:
            raise too_deep_to_decode() from e

    def item(self, pos: int, final: bool) -> tuple[dict[str, Any] | None, int] | None:
        """(None, end) of the object at pos, left undecoded; None while it may be incomplete."""
        end = self.end_of(pos, final)
        if end is None:
            return None
        if self.buf[pos] != 0x7B:  # "{"
            raise DecodeError("list item is not a JSON object")
        return None, end

    def raw(self, start: int, end: int) -> bytes:
        return self.buf[start:end]
