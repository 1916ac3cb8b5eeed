"""Decoding a text upload: UTF-8, UTF-16 (with or without BOM), Windows-1252; binary files and mixed encodings
are refused."""

from __future__ import annotations

import codecs
import contextlib
import re
import unicodedata

import charset_normalizer

from callaro_pipeline.core.errors import UnusableInput

_CONTROL_CHARS = re.compile(r"[\x01-\x08\x0e-\x1f\x7f]")  # \t \n \v \f \r occur in real exports
_BINARY_SAMPLE_CHARS = 100_000
# Valid UTF-8 sequences of two to four bytes: in a file that is not UTF-8 as a whole they mean mixed encodings.
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode with cheap rules first (BOMs, UTF-16 without BOM, strict UTF-8, Windows-1252), then charset-normalizer."""
    for bom, codec, name in (
        (codecs.BOM_UTF8, "utf-8-sig", "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16", "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16", "utf-16"),
    ):
        if data.startswith(bom):
            return _refuse_binary(_decode_strict(data, codec)), name
    bomless_utf16 = _bomless_utf16(data[:4096])
    if bomless_utf16:
        text = _refuse_binary(_decode_strict(data, bomless_utf16), guessed=True)
        sample = text[:_BINARY_SAMPLE_CHARS]
        if sum(map(str.isascii, sample)) * 2 < len(sample):  # detected from NUL bytes of ASCII characters
            raise UnusableInput("the file is binary, not a text table")
        return text, bomless_utf16
    if b"\x00" in data:
        raise UnusableInput("the file is binary, not a text table (it contains NUL bytes)")
    try:
        return _refuse_binary(data.decode("utf-8")), "utf-8"
    except UnicodeDecodeError as not_utf8:
        _refuse_mixed_encodings(data, not_utf8.start)
    with contextlib.suppress(UnicodeDecodeError):
        return _refuse_binary(data.decode("cp1252")), "cp1252"
    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        raise UnusableInput("the file is binary or in an unknown text encoding: save it as UTF-8 CSV")
    return _refuse_binary(str(best), guessed=True), best.encoding


def _decode_strict(data: bytes, codec: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        raise UnusableInput(f"the file looks like {codec} text but does not decode as it; save it as UTF-8") from None


def _bomless_utf16(head: bytes) -> str | None:
    """ASCII-heavy UTF-16 without a BOM: NUL bytes in one byte position of every pair, almost none in the other."""
    pairs = len(head) // 2
    if pairs < 2:
        return None
    zeros_even = head[0 : pairs * 2 : 2].count(0)
    zeros_odd = head[1 : pairs * 2 : 2].count(0)
    if zeros_odd >= 0.3 * pairs and zeros_even <= 0.05 * pairs:
        return "utf-16-le"
    if zeros_even >= 0.3 * pairs and zeros_odd <= 0.05 * pairs:
        return "utf-16-be"
    return None


def _refuse_binary(text: str, *, guessed: bool = False) -> str:
    """Decoded bytes that are not text: NULs, control characters and, when the encoding was guessed rather
    than declared or strict, code points no text uses (unassigned, private use, U+FFFD) in more than 1% of
    the first characters."""
    sample = text[:_BINARY_SAMPLE_CHARS]
    if "\x00" in text or len(_CONTROL_CHARS.findall(sample)) * 100 > len(sample):
        raise UnusableInput("the file is binary, not a text table")
    if guessed and not sample.isascii():
        odd = sum(1 for ch in sample if ch == "\ufffd" or unicodedata.category(ch) in ("Cn", "Co", "Cs"))
        if odd * 100 > len(sample):
            raise UnusableInput("the file is binary, not a text table")
    return text


def _refuse_mixed_encodings(data: bytes, first_invalid: int) -> None:
    """A file that is not UTF-8 as a whole but holds lines of valid UTF-8 with non-ASCII characters mixes
    encodings (e.g. UTF-8 rows appended to a Windows-1252 export): read with one codec, half of its names would
    be mojibake ("J\u00c3\u00bcrgen"). Refused, naming one line of each kind; nothing is imported."""
    position = 0
    for _ in range(1000):  # a few candidates: a lone match inside a Windows-1252 line is a coincidence
        match = _UTF8_MULTIBYTE.search(data, position)
        if match is None:
            return
        start = data.rfind(b"\n", 0, match.start()) + 1
        end = data.find(b"\n", match.end())
        end = len(data) if end == -1 else end
        try:
            data[start:end].decode("utf-8")
        except UnicodeDecodeError:
            position = end
            continue
        utf8_line = data.count(b"\n", 0, start) + 1
        other_line = data.count(b"\n", 0, first_invalid) + 1
        raise UnusableInput(
            f"the file mixes text encodings: line {other_line} is not UTF-8 (Windows-1252?) but line {utf8_line} "
            "is UTF-8; save the whole file in one encoding (UTF-8) and upload again"
        )
