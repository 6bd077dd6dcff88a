"""Text encodings we accept: UTF-8 with or without BOM, UTF-16 with BOM.

A file that is not valid in its encoding is rejected with the byte offset of the
first bad sequence, never loaded as mojibake.
"""

from __future__ import annotations

import codecs

from crm_pipeline.landing.errors import FileRejected

_CHUNK = 16 * 1024 * 1024
NUL_REPLACEMENT = "\ufffd".encode()


def detect_and_decode(path: str, data: bytes) -> tuple[str, bytes]:
    """Return (encoding name, the text as UTF-8 bytes without BOM and without NUL bytes).

    NUL bytes are replaced by U+FFFD: PostgreSQL text and most tools refuse them, and
    the quality stage flags the changed value rather than losing the row.
    """
    if data.startswith(codecs.BOM_UTF8):
        encoding, body = "utf-8-sig", data[len(codecs.BOM_UTF8):]
        _check_utf8(path, body, offset=len(codecs.BOM_UTF8))
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
        try:
            body = data.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as exc:
            raise FileRejected(path, f"not valid UTF-16 at byte offset {exc.start}") from None
    else:
        encoding, body = "utf-8", data
        _check_utf8(path, body, offset=0)
    if b"\x00" in body:
        body = body.replace(b"\x00", NUL_REPLACEMENT)
    return encoding, body


def _check_utf8(path: str, body: bytes, offset: int) -> None:
    """Strict UTF-8 validation in chunks, so a large file is not held twice as text."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    position = 0
    try:
        for start in range(0, len(body), _CHUNK):
            position = start
            decoder.decode(body[start:start + _CHUNK], final=start + _CHUNK >= len(body))
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise FileRejected(
            path, f"not valid UTF-8 at byte offset {offset + position + exc.start} "
                  f"(bytes {body[position + exc.start:position + exc.start + 4]!r}); re-export it as UTF-8"
        ) from None
