"""Reading an uploaded file's bytes into a table of text: CSV/TSV (UTF-8, UTF-16, Windows-1252) and .xlsx.

Every value stays text (no type inference: `+1…` and leading zeros survive). Row numbers are the rows a
spreadsheet user sees: one record is one row even when a quoted cell spans lines, and title rows above the
header count. Error messages name rows and sizes, never cell values: those are personal data.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import gc
import io
import itertools
import os
import re
import unicodedata
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

import charset_normalizer
import polars as pl
import python_calamine

from callaro_pipeline.core.errors import ConfigError, NothingToImport, UnusableInput

TEXT_EXTENSIONS = (".csv", ".tsv", ".txt")
XLSX_EXTENSIONS = (".xlsx",)
DELIMITERS = ("\t", "|", ";", ",")  # tie-break order: tabs and pipes rarely occur inside values, commas often do
ROW_NUMBER = "row_number"

_SAMPLE_RECORDS = 200
_SAMPLE_CHARS = 1024 * 1024
_HEADER_SEARCH_ROWS = 50
_CHUNK_ROWS = 100_000
_REPAIRABLE_NUMBER = r"^[0-9]{6,}\.0+$"
_NUMBER_LIKE = re.compile(r"[+\-]?[\d\s().,/:-]*(?:[eE][+\-]?\d+)?")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_CONTROL_CHARS = re.compile(r"[\x01-\x08\x0e-\x1f\x7f]")  # \t \n \v \f \r occur in real exports
_BINARY_SAMPLE_CHARS = 100_000
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_MAX_ZIP_ENTRIES = 10_000
_MAX_COMPRESSION_RATIO = 200  # real sheet XML compresses 5-50x; deflate bombs reach ~1000x
_RATIO_CHECK_MIN_BYTES = 1024 * 1024
_MEGABYTE = 1024 * 1024
# A sheet's used range is allocated whole by the reader (python-calamine): one value at XFD1048576 asks for
# ~512 GB and aborts the process. A range far larger than the cells it holds is refused before calamine runs.
_MAX_SPARSE_AREA = 5_000_000  # cells: a range up to this size is read whatever it holds
_MAX_AREA_PER_CELL = 10  # beyond it, the range may be at most this many times the cells present
_CELL_REF = re.compile(rb"<(?:\w+:)?c\b[^>]*?\sr=\"\$?([A-Za-z]+)\$?([0-9]+)\"[^>]*?(/?)>")
_XML_CHUNK = 4 * _MEGABYTE
_EXCEL_LAST_CELL = "XFD1048576"
# Signatures of binary formats people upload by mistake (images, documents, archives, programs, databases).
_BINARY_MAGICS = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh91AY&SY", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"\x7fELF", "a program (ELF)"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"PAR1", "a Parquet file"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"RIFF", "a RIFF media file"),
    (b"OggS", "an Ogg media file"),
    (b"\x00asm", "a WebAssembly module"),
)
# Summary lines under the data ("Grand Totals (10 records)", "Total: 25 contacts", "Count: 12") and the report
# footers of CRM exports: a trailing row with a single non-empty cell like these is not a row.
_FOOTER = re.compile(
    r"(?:(?:grand\s+|sub\s*)?totals?|(?:record\s+|row\s+|contact\s+)?count|sum|summe|gesamt|summary|anzahl)"
    r"[\s:=(#.-]*\d[\d,.]*\)?(?:\s+(?:records?|rows?|contacts?|leads?|entries|datens\u00e4tze)\)?)?\.?"
    r"|\(?\d[\d,.]*\s+(?:records?|rows?|contacts?|leads?|entries)\)?",
    re.IGNORECASE,
)
# Report footers of CRM exports, matched on the whole line (they hold commas: "salesforce.com, inc.").
_REPORT_FOOTER = re.compile(
    r"\"?(?:confidential\s+information|copyright\s*(?:\(c\)|\u00a9)|\u00a9\s*\d{4}|generated\s+by\s*:|end\s+of\s+report).*",
    re.IGNORECASE,
)
_MAX_FOOTER_ROWS = 20
# Valid UTF-8 sequences of two to four bytes: in a file that is not UTF-8 as a whole they mean mixed encodings.
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


@dataclass(frozen=True)
class ReadLimits:
    max_bytes: int = 512 * 1024 * 1024
    max_rows: int = 5_000_000
    max_columns: int = 500
    max_xlsx_uncompressed_bytes: int = 1024 * 1024 * 1024  # zip-bomb guard, checked before inflating

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReadLimits:
        """The defaults, overridden by CALLARO_MAX_UPLOAD_BYTES, CALLARO_MAX_ROWS, CALLARO_MAX_COLUMNS and
        CALLARO_MAX_XLSX_UNCOMPRESSED_BYTES (positive integers) where set."""
        environ = os.environ if environ is None else environ
        values = {}
        for name, variable in LIMIT_VARIABLES.items():
            text = (environ.get(variable) or "").strip().replace("_", "")
            if not text:
                continue
            if not text.isdigit() or int(text) <= 0:
                raise ConfigError(f"{variable} must be a positive whole number, not {text[:20]!r}")
            values[name] = int(text)
        return cls(**values)


LIMIT_VARIABLES = {
    "max_bytes": "CALLARO_MAX_UPLOAD_BYTES",
    "max_rows": "CALLARO_MAX_ROWS",
    "max_columns": "CALLARO_MAX_COLUMNS",
    "max_xlsx_uncompressed_bytes": "CALLARO_MAX_XLSX_UNCOMPRESSED_BYTES",
}


@dataclass
class RawTable:
    columns: list[str]
    rows: pl.DataFrame
    encoding: str | None
    delimiter: str | None
    header_row: int
    sheet: str | None
    malformed: pl.DataFrame = field(default_factory=lambda: _malformed_frame([]))
    repaired_cells: int = 0
    footer_rows: int = 0
    """summary lines under the data ("Grand Totals (10 records)") left out: they are not rows"""


def read_table(data: bytes, filename: str, *, sheet: str | None = None, limits: ReadLimits = ReadLimits()) -> RawTable:
    """Read an upload's bytes as a table of text; the content decides the format, the name only must be allowed."""
    if not data:
        raise UnusableInput("the file is empty")
    if len(data) > limits.max_bytes:
        raise UnusableInput(f"the file is {_size_text(len(data))}; the limit is {_size_text(limits.max_bytes)}")
    if data.startswith(_ZIP_MAGICS):
        return _read_xlsx(data, sheet, limits)
    if data.startswith(_OLE2_MAGIC):
        raise UnusableInput(
            "the file is a legacy Excel (.xls) or password-protected workbook: save it as .xlsx or CSV without a password"
        )
    for magic, kind in _BINARY_MAGICS:
        if data.startswith(magic):
            raise UnusableInput(f"the file is binary ({kind}), not a text table: upload CSV, TSV, TXT or .xlsx")
    extension = file_extension(filename)
    if extension not in TEXT_EXTENSIONS + XLSX_EXTENSIONS:
        raise UnusableInput(
            f"files of type {extension or '(no extension)'!r} are not supported: upload CSV, TSV, TXT or .xlsx"
        )
    if extension in XLSX_EXTENSIONS:
        raise UnusableInput("the file is named .xlsx but is not an Excel workbook")
    return _read_delimited(data, limits)


def check_size(size: int, limits: ReadLimits) -> None:
    """Refuse a file over the byte limit from its size alone, before its bytes are read into memory."""
    if size > limits.max_bytes:
        raise UnusableInput(f"the file is {_size_text(size)}; the limit is {_size_text(limits.max_bytes)}")


def file_extension(filename: str) -> str:
    """The lowercased extension of the last path component, whatever separators the name uses."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, extension = base.rpartition(".")
    return f".{extension.lower()}" if dot and stem else ""


# --- delimited text -------------------------------------------------------------------------------------------


def _read_delimited(data: bytes, limits: ReadLimits) -> RawTable:
    text, encoding = _decode_text(data)
    if not text.strip():
        raise UnusableInput("the file holds only blank lines")
    delimiter, sample = _detect_delimiter(text)
    text, footer_rows = _drop_footer_lines(text, delimiter)
    if footer_rows:
        sample = _sample_records(text, delimiter)
    width = _dominant_width(sample)
    if width > limits.max_columns:
        raise UnusableInput(f"the table has {width} columns; the limit is {limits.max_columns}")
    header_index, header = _find_header(sample, width)
    plain = _parse_plain(text, delimiter, header_index, len(header), limits)
    malformed: list[tuple[int, str]] = []
    if plain is not None:
        frame = plain
    else:
        with _gc_paused():
            frame, malformed = _parse_records(text, delimiter, header_index, len(header), limits)
    return _finish(
        frame,
        _unique_column_names(header),
        malformed,
        encoding=encoding,
        delimiter=delimiter,
        header_row=header_index + 1,
        sheet=None,
        footer_rows=footer_rows,
    )


def _decode_text(data: bytes) -> tuple[str, str]:
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


def _csv_records(text: str, delimiter: str) -> Iterator[list[str]]:
    reader = csv.reader(_lines(text), delimiter=delimiter, quotechar='"', doublequote=True)
    row_number = 0
    try:
        for row_number, record in enumerate(reader, start=1):  # noqa: B007 - read in the except clause
            yield record
    except csv.Error:
        # the csv module's messages are generic, but no parser message may reach the user unchecked
        raise UnusableInput(
            f"row {row_number + 1}: the CSV cannot be parsed there (broken quoting or a cell over "
            f"{csv.field_size_limit()} characters)"
        ) from None


def _lines(text: str) -> Iterator[str]:
    """Lines with their CRLF/CR/LF ends, as `newline=""` reads them (io.StringIO would copy the text, 4 bytes a char)."""
    return map(re.Match.group, _LINE.finditer(text))


def _detect_delimiter(text: str) -> tuple[str, list[list[str]]]:
    """The delimiter under which most of the first records share one field count (>1), quoting respected."""
    candidates = [(delimiter, _sample_records(text, delimiter)) for delimiter in DELIMITERS]
    # max() keeps the first of equal scores: DELIMITERS is in tie-break order
    delimiter, sample = max(candidates, key=lambda candidate: _consistency(candidate[1]))
    if _consistency(sample)[0] == 0:  # a single column: no delimiter in use
        delimiter = ","
        sample = _sample_records(text, delimiter)
    return delimiter, sample


def _sample_records(text: str, delimiter: str) -> list[list[str]]:
    """The first records, parsed from a prefix (cheap for every candidate); a cut last record is dropped."""
    records: list[list[str]] = []
    try:
        records.extend(itertools.islice(_csv_records(text[:_SAMPLE_CHARS], delimiter), _SAMPLE_RECORDS))
    except UnusableInput:
        return records  # the records before a parse error; the full parse reports the error with its row
    if len(text) > _SAMPLE_CHARS and len(records) < _SAMPLE_RECORDS:
        return records[:-1]
    return records


def _consistency(sample: list[list[str]]) -> tuple[int, int]:
    widths = Counter(len(record) for record in sample if len(record) > 1)
    if not widths:
        return (0, 1)
    width, count = max(widths.items(), key=lambda item: (item[1], item[0]))
    return (count, width)


def _dominant_width(sample: list[list[str]]) -> int:
    return _consistency(sample)[1]


def _find_header(sample: list[list[str]], width: int) -> tuple[int, list[str]]:
    """The first record that reads as column labels for rows of `width` cells (title rows above are skipped)."""
    for index, record in enumerate(sample[:_HEADER_SEARCH_ROWS]):
        if _looks_like_labels(record, width) and not _blank_over_data(record, sample[index + 1 :]):
            fitted = _fit_width(record, width)
            if len(fitted) == width:
                return index, fitted
            if len(record) < width:  # the data rows end in surplus delimiters: their blank tails are trimmed
                return index, record
    raise UnusableInput(
        f"no header row found: none of the first {_HEADER_SEARCH_ROWS} rows holds column names for a "
        f"{width}-column table"
    )


def _blank_over_data(record: list[str], below: list[list[str]]) -> bool:
    """A header names the columns that hold data: a candidate with a blank cell over a column filled with
    numbers, phones or e-mails in nearly every row below is a data row with an empty cell (a headerless file)."""
    if len(below) < 2:
        return False
    for position, cell in enumerate(record):
        if cell.strip():
            continue
        values = [row[position].strip() for row in below if len(row) > position and row[position].strip()]
        data_like = sum(1 for value in values if "@" in value or _NUMBER_LIKE.fullmatch(value))
        if len(values) * 10 >= len(below) * 9 and data_like * 10 >= len(values) * 9:
            return True
    return False


def _footer_cell(cells: Sequence[str]) -> bool:
    filled = [cell.strip() for cell in cells if cell.strip()]
    if len(filled) != 1:
        return False
    text = " ".join(filled[0].split())
    return _FOOTER.fullmatch(text) is not None or _REPORT_FOOTER.fullmatch(text) is not None


def _drop_footer_lines(text: str, delimiter: str) -> tuple[str, int]:
    """Summary lines at the end of the data ("Grand Totals (10 records)", "Total: 25 contacts", report
    footers): trailing lines holding one non-empty cell that matches _FOOTER, blank lines between them
    allowed. Returns the text without them and how many there were."""
    position, cut, dropped = len(text), None, 0
    for _ in range(3 * _MAX_FOOTER_ROWS):
        end = position
        while end > 0 and text[end - 1] in "\r\n":
            end -= 1
        if end == 0:
            break
        start = max(text.rfind("\n", 0, end), text.rfind("\r", 0, end)) + 1
        line = text[start:end]
        position = start
        if not line.strip():
            continue
        if dropped >= _MAX_FOOTER_ROWS:
            break
        try:
            cells = next(csv.reader([line], delimiter=delimiter, quotechar='"', doublequote=True), [])
        except csv.Error:
            break
        if not (_footer_cell(cells) or _REPORT_FOOTER.fullmatch(" ".join(line.split()))):
            break
        cut, dropped = start, dropped + 1
    return (text[:cut], dropped) if cut is not None else (text, 0)


def _drop_footer_rows(values: list[list[Any]]) -> int:
    """The sheet version of `_drop_footer_lines`: trailing rows dropped from `values` in place; their count."""
    dropped = 0
    while values and dropped < _MAX_FOOTER_ROWS:
        cells = [_cell_text(value) for value in values[-1]]
        if any(cell.strip() for cell in cells) and not _footer_cell(cells):
            break
        if any(cell.strip() for cell in cells):
            dropped += 1
        values.pop()
    return dropped


def _fit_width(record: list[str], width: int) -> list[str]:
    """Drop surplus trailing cells when all are blank (a lossless trim of spreadsheet padding)."""
    if len(record) > width and not any(cell.strip() for cell in record[width:]):
        return record[:width]
    return record


def _looks_like_labels(record: list[str], width: int) -> bool:
    """Labels fill at least half the width (title rows fill one cell) and none is a number, date or e-mail."""
    filled = [cell.strip() for cell in record if cell.strip()]
    return (
        len(filled) >= min(2, width)
        and 2 * len(filled) >= width
        and all("@" not in cell and not _NUMBER_LIKE.fullmatch(cell) for cell in filled)
    )


def _parse_records(
    text: str, delimiter: str, header_index: int, width: int, limits: ReadLimits
) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    records = _csv_records(text, delimiter)
    for _ in itertools.islice(records, header_index + 1):
        pass
    frames: list[pl.DataFrame] = []
    malformed: list[tuple[int, str]] = []
    first_data_row = next_row = header_index + 2
    while chunk := list(itertools.islice(records, _CHUNK_ROWS)):
        if next_row + len(chunk) - first_data_row > limits.max_rows:
            raise UnusableInput(f"the file has more than {limits.max_rows} rows; the limit is {limits.max_rows}")
        frame, chunk_malformed = _chunk_frame(chunk, next_row, width)
        frames.append(frame)
        malformed.extend(chunk_malformed)
        next_row += len(chunk)
    return (pl.concat(frames) if frames else _cells_frame([], [], width)), malformed


def _parse_plain(text: str, delimiter: str, header_index: int, width: int, limits: ReadLimits) -> pl.DataFrame | None:
    """The common case in bulk: quotes only around whole cells that need none ("", "Ann"), one line per record,
    every data line with exactly `width` cells and none blank. Then the csv module's records are simply the
    lines split at the delimiter with those quotes removed, and polars' reader (multi-threaded, no Python
    object per cell) gives the same cells (an empty cell reads as null, which `_finish` makes of "" anyway).
    Anything else returns None for `_parse_records`.
    """
    if text.count("\r") != text.count("\r\n") or not _only_wrapping_quotes(text, delimiter):
        return None
    start = 0
    for _ in range(header_index + 1):  # no quotes: the header is line header_index + 1
        start = text.find("\n", start) + 1
        if start == 0:
            return None
    data = text[start:]
    if not data or data[0] in "\r\n" or "\n\n" in data or "\n\r\n" in data:
        return None  # blank lines are records of their own for the csv module: numbering needs the slow path
    lines = data.count("\n") + (0 if data.endswith("\n") else 1)
    if lines > limits.max_rows:
        raise UnusableInput(f"the file has more than {limits.max_rows} rows; the limit is {limits.max_rows}")
    if data.count(delimiter) != (width - 1) * lines:
        return None  # some line has another number of cells (malformed or padded): the slow path decides
    try:
        frame = pl.read_csv(
            io.BytesIO(data.encode("utf-8")),
            has_header=False,
            separator=delimiter,
            quote_char='"',
            schema={f"c{position}": pl.Utf8 for position in range(width)},
        )
    except pl.exceptions.PolarsError:  # a line with too many cells (so another has too few): slow path
        return None
    if frame.height != lines:
        return None
    first_row = header_index + 2
    return frame.select(pl.int_range(first_row, first_row + lines, dtype=pl.Int64).alias(ROW_NUMBER), pl.all())


def _only_wrapping_quotes(text: str, delimiter: str) -> bool:
    """Every quote character belongs to a pair around a whole cell holding no quote, delimiter or line break."""
    quotes = text.count('"')
    if not quotes:
        return True
    separators = (delimiter, "\n", "\r")
    wrapped = re.compile(f'"[^"{re.escape(delimiter)}\\r\\n]*"(?=[{re.escape(delimiter)}\\r\\n]|\\Z)')
    paired = 0
    for match in wrapped.finditer(text):
        start = match.start()
        if start and text[start - 1] not in separators:
            return False
        paired += 2
    return paired == quotes


def _chunk_frame(chunk: list[list[str]], first_row: int, width: int) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    lengths = list(map(len, chunk))
    if lengths.count(width) == len(chunk):
        return _cells_frame(range(first_row, first_row + len(chunk)), chunk, width), []
    kept: list[list[str]] = []
    row_numbers: list[int] = []
    malformed: list[tuple[int, str]] = []
    for row_number, record, length in zip(itertools.count(first_row), chunk, lengths, strict=False):
        cells = _fit_width(record, width) if length > width else record
        if len(cells) == width:
            kept.append(cells)
            row_numbers.append(row_number)
        elif any(cell.strip() for cell in record):
            malformed.append((row_number, f"the row has {length} cells but the header has {width}"))
    return _cells_frame(row_numbers, kept, width), malformed


def _cells_frame(row_numbers: range | list[int], records: list[list[str]], width: int) -> pl.DataFrame:
    """Positional columns c0..cN (C-level transpose): names are applied once at the end."""
    columns = list(zip(*records, strict=True)) if records else [()] * width
    return pl.DataFrame(
        [pl.Series(ROW_NUMBER, row_numbers, dtype=pl.Int64)]
        + [pl.Series(f"c{position}", values, dtype=pl.Utf8) for position, values in enumerate(columns)]
    )


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Millions of short-lived lists trigger needless cyclic-GC passes (measured: halves the parse time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- xlsx -----------------------------------------------------------------------------------------------------


def _read_xlsx(data: bytes, sheet: str | None, limits: ReadLimits) -> RawTable:
    _check_workbook_archive(data, limits)
    _check_used_range(data, sheet, limits)
    with _gc_paused():
        return _read_checked_xlsx(data, sheet, limits)


def _read_checked_xlsx(data: bytes, sheet: str | None, limits: ReadLimits) -> RawTable:
    try:
        workbook = python_calamine.CalamineWorkbook.from_object(io.BytesIO(data))
        names = workbook.sheet_names
        if sheet is not None and sheet not in names:
            raise UnusableInput(
                f"the workbook has no sheet named {_shown(sheet)!r}; its sheets are {_shown(', '.join(names), 200)}"
            )
        if not names:
            raise UnusableInput("the workbook has no sheets")
        chosen = workbook.get_sheet_by_name(sheet) if sheet is not None else workbook.get_sheet_by_index(0)
        last_row, last_column = chosen.end or (-1, -1)  # 0-based position of the last used cell
        if last_column + 1 > limits.max_columns:
            raise UnusableInput(f"the sheet has {last_column + 1} columns; the limit is {limits.max_columns}")
        if last_row + 1 > limits.max_rows + _HEADER_SEARCH_ROWS:
            raise UnusableInput(f"the sheet has more than {limits.max_rows} rows; the limit is {limits.max_rows}")
        values = chosen.to_python(skip_empty_area=False)
        footer_rows = _drop_footer_rows(values)
    except UnusableInput:
        raise
    except Exception as exc:  # calamine raises many error types whose messages may quote cell content
        raise UnusableInput(f"the workbook cannot be read ({type(exc).__name__})") from None
    width = max(map(len, values), default=0)
    if width == 0:
        raise UnusableInput(f"the sheet {chosen.name!r} is empty")
    sample = [[_cell_text(value) for value in row] for row in values[:_SAMPLE_RECORDS]]
    header_index, header = _find_header(sample, width)
    data_rows = values[header_index + 1 :]
    if len(data_rows) > limits.max_rows:
        raise UnusableInput(f"the sheet has more than {limits.max_rows} rows; the limit is {limits.max_rows}")
    first_row = header_index + 2
    frame = pl.DataFrame(
        [pl.Series(ROW_NUMBER, range(first_row, first_row + len(data_rows)), dtype=pl.Int64)]
        + [
            pl.Series(f"c{position}", _column_text(column), dtype=pl.Utf8)
            for position, column in enumerate(_sheet_columns(data_rows, width))
        ]
    )
    return _finish(
        frame,
        _unique_column_names(header),
        [],
        encoding=None,
        delimiter=None,
        header_row=header_index + 1,
        sheet=chosen.name,
        footer_rows=footer_rows,
    )


def _check_workbook_archive(data: bytes, limits: ReadLimits) -> None:
    """Refuse archives that are not .xlsx, and zip bombs: declared sizes and ratios first, then a bounded inflate."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise UnusableInput("the file is a damaged zip archive, not a readable .xlsx workbook") from None
    names = {entry.filename for entry in entries}
    if "xl/workbook.bin" in names:
        raise UnusableInput("binary Excel workbooks (.xlsb) are not supported: save the sheet as .xlsx or CSV")
    if "xl/workbook.xml" not in names:
        raise UnusableInput("the file is a zip archive but not an .xlsx workbook")
    if len(entries) > _MAX_ZIP_ENTRIES:
        raise UnusableInput(f"the workbook archive has {len(entries)} parts; the limit is {_MAX_ZIP_ENTRIES}")
    declared = sum(entry.file_size for entry in entries)
    if declared > limits.max_xlsx_uncompressed_bytes:
        raise UnusableInput(
            f"the workbook expands to {_size_text(declared)}; the limit is {_size_text(limits.max_xlsx_uncompressed_bytes)}"
        )
    if any(map(_compressed_like_a_bomb, entries)):
        raise UnusableInput("the workbook is compressed far beyond any real spreadsheet (a zip bomb); refused")
    _verify_inflated_sizes(archive, entries)


def _check_used_range(data: bytes, sheet: str | None, limits: ReadLimits) -> None:
    """Refuse a sheet whose cells reach far beyond what it holds, before python-calamine allocates its whole
    used range (a single value at XFD1048576 is ~512 GB: the process aborts, no exception is raised).

    The sheet XML is streamed and only the cell references are looked at (`<c r="XFD1048576">`); cells
    without content (`<c r=".." s="1"/>`) and the `<dimension>` element are not allocated by the reader and
    do not count."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    for name, part in _worksheet_parts(archive, sheet):
        cells, last_row, last_column = _sheet_extent(archive, part)
        area = last_row * last_column
        if area > _MAX_SPARSE_AREA and area > _MAX_AREA_PER_CELL * cells:
            raise UnusableInput(
                f"the sheet {_shown(name)!r} holds {cells:,} cells but its used range reaches cell "
                f"{_column_letters(last_column)}{last_row} ({area:,} cells): delete the stray cells far below or "
                "right of the data, or save the data range as CSV"
            )
        if last_column > limits.max_columns:
            raise UnusableInput(f"the sheet has {last_column} columns; the limit is {limits.max_columns}")
        if last_row > limits.max_rows + _HEADER_SEARCH_ROWS:
            raise UnusableInput(f"the sheet has more than {limits.max_rows} rows; the limit is {limits.max_rows}")


def _worksheet_parts(archive: zipfile.ZipFile, sheet: str | None) -> list[tuple[str, str]]:
    """(sheet name, archive part) of the sheet the reader will open: the named one, else the first. When the
    workbook's part list cannot be followed, every worksheet part is checked."""
    names = set(archive.namelist())
    every = [(part, part) for part in sorted(names) if re.fullmatch(r"xl/worksheets/[^/]+\.xml", part)]
    try:
        workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
        relations = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    except (KeyError, ElementTree.ParseError, zipfile.BadZipFile, ValueError):
        return every
    targets = {rel.get("Id"): rel.get("Target") or "" for rel in relations if rel.tag.endswith("Relationship")}
    sheets = [element for element in workbook.iter() if element.tag.endswith("}sheet") or element.tag == "sheet"]
    for element in sheets:
        if sheet is not None and element.get("name") != sheet:
            continue
        rel_id = next((value for key, value in element.attrib.items() if key.endswith("}id")), None)
        target = targets.get(rel_id, "")
        part = target.lstrip("/") if target.startswith("/") else "xl/" + target
        part = re.sub(r"[^/]+/\.\./", "", part)
        return [(element.get("name") or part, part)] if part in names else every
    return every


def _sheet_extent(archive: zipfile.ZipFile, part: str) -> tuple[int, int, int]:
    """(cells with content, last row, last column) from the cell references of a sheet part, streamed."""
    cells, last_row = 0, 0
    columns: set[bytes] = set()
    carry = b""
    try:
        with archive.open(part) as stream:
            while True:
                chunk = stream.read(_XML_CHUNK)
                buffer = carry + chunk
                cut = buffer.rfind(b"<") if chunk else len(buffer)  # a tag cut by the chunk waits for the next
                if cut <= 0:
                    if len(buffer) < 4 * _XML_CHUNK:
                        carry = buffer
                        continue
                    cut = len(buffer)
                carry, buffer = buffer[cut:], buffer[:cut]
                filled = [(column, row) for column, row, empty in _CELL_REF.findall(buffer) if not empty]
                if filled:
                    cells += len(filled)
                    columns.update(column for column, _ in filled)
                    rows = [row for _, row in filled]
                    longest = max(map(len, rows))
                    last_row = max(last_row, int(max(row for row in rows if len(row) == longest)))
                if not chunk:
                    break
    except (KeyError, zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError):
        raise UnusableInput("the workbook archive is damaged or uses unsupported compression") from None
    return cells, last_row, max(map(_column_number, columns), default=0)


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters.upper()[:8]:  # eight letters are far beyond any sheet: enough to refuse it
        number = number * 26 + letter - 64
    return number


def _column_letters(number: int) -> str:
    letters = ""
    while number > 0 and len(letters) < 8:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _shown(text: str, limit: int = 80) -> str:
    """A user-given text cut for a message (names of sheets, columns: never cell values)."""
    return text if len(text) <= limit else text[:limit] + "\u2026"


def _compressed_like_a_bomb(entry: zipfile.ZipInfo) -> bool:
    return entry.file_size > _RATIO_CHECK_MIN_BYTES and entry.file_size > _MAX_COMPRESSION_RATIO * max(
        entry.compress_size, 1
    )


def _verify_inflated_sizes(archive: zipfile.ZipFile, entries: list[zipfile.ZipInfo]) -> None:
    """zipfile stops each entry at its declared size and checks its CRC, so a lying header fails here, bounded."""
    try:
        for entry in entries:
            with archive.open(entry) as stream:
                while stream.read(_MEGABYTE):
                    pass
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError, OSError, EOFError, RuntimeError):
        raise UnusableInput("the workbook archive is damaged or uses unsupported compression") from None


def _sheet_columns(rows: Sequence[Sequence[object]], width: int) -> list[tuple[object, ...]]:
    if not rows:
        return [()] * width
    padded = rows if all(len(row) == width for row in rows) else [[*row, *[""] * (width - len(row))] for row in rows]
    return list(zip(*padded, strict=True))


def _column_text(column: tuple[object, ...]) -> tuple[object, ...] | list[str]:
    if set(map(type, column)) <= {str}:
        return column
    return [_cell_text(value) for value in column]


def _cell_text(value: object) -> str:
    """Cell values as text without loss: integral numbers without `.0`, dates as ISO text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        # beyond 15 significant digits Excel itself has lost precision: keep the honest float text
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return "" if value is None else str(value)


# --- shared finishing -----------------------------------------------------------------------------------------


def _unique_column_names(header: list[str]) -> list[str]:
    """Header labels with whitespace collapsed; blanks become `column_<n>`, repeats `Phone (2)` (case-insensitive)."""
    seen = {ROW_NUMBER}
    names: list[str] = []
    for position, cell in enumerate(header, start=1):
        base = " ".join(cell.split()) or f"column_{position}"
        name, copy = base, 1
        while name.casefold() in seen:
            copy += 1
            name = f"{base} ({copy})"
        seen.add(name.casefold())
        names.append(name)
    return names


def _finish(
    frame: pl.DataFrame,
    columns: list[str],
    malformed: list[tuple[int, str]],
    *,
    encoding: str | None,
    delimiter: str | None,
    header_row: int,
    sheet: str | None,
    footer_rows: int = 0,
) -> RawTable:
    """Strip, blank -> null, lossless repair of `4155550134.0`, drop all-blank rows, apply the column names."""
    positional = [f"c{position}" for position in range(len(columns))]
    stripped_values = [pl.col(name).str.strip_chars() for name in positional]
    stripped = frame.with_columns(
        pl.when(value != "").then(value).alias(name) for name, value in zip(positional, stripped_values, strict=True)
    )
    damaged = [pl.col(name).str.contains(_REPAIRABLE_NUMBER) for name in positional]
    repaired_cells = stripped.select(pl.sum_horizontal(damaged).sum()).item()
    rows = (
        stripped.with_columns(
            pl.when(is_damaged).then(pl.col(name).str.replace(r"\.0+$", "")).otherwise(pl.col(name)).alias(name)
            for name, is_damaged in zip(positional, damaged, strict=True)
        )
        .filter(pl.any_horizontal(pl.col(positional).is_not_null()))
        .rename(dict(zip(positional, columns, strict=True)))
    )
    malformed_frame = _malformed_frame(malformed)
    if rows.is_empty() and malformed_frame.is_empty():
        raise NothingToImport("the file has a header but no data rows")
    return RawTable(
        columns=columns,
        rows=rows,
        encoding=encoding,
        delimiter=delimiter,
        header_row=header_row,
        sheet=sheet,
        malformed=malformed_frame,
        repaired_cells=int(repaired_cells or 0),
        footer_rows=footer_rows,
    )


def _malformed_frame(malformed: list[tuple[int, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            ROW_NUMBER: pl.Series([row for row, _ in malformed], dtype=pl.Int64),
            "message": pl.Series([message for _, message in malformed], dtype=pl.Utf8),
        }
    )


def _size_text(size: int) -> str:
    return f"{size / _MEGABYTE:,.1f} MB" if size >= _MEGABYTE else f"{size / 1024:,.1f} KB"
