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
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import charset_normalizer
import polars as pl
import python_calamine

from callaro_pipeline.errors import ConfigError, NothingToImport, UnusableInput

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
        return _refuse_binary(_decode_strict(data, bomless_utf16)), bomless_utf16
    if b"\x00" in data:
        raise UnusableInput("the file is binary, not a text table (it contains NUL bytes)")
    for codec in ("utf-8", "cp1252"):
        with contextlib.suppress(UnicodeDecodeError):
            return _refuse_binary(data.decode(codec)), codec
    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        raise UnusableInput("the file is binary or in an unknown text encoding: save it as UTF-8 CSV")
    return _refuse_binary(str(best)), best.encoding


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


def _refuse_binary(text: str) -> str:
    sample = text[:_BINARY_SAMPLE_CHARS]
    if "\x00" in text or len(_CONTROL_CHARS.findall(sample)) * 100 > len(sample):
        raise UnusableInput("the file is binary, not a text table")
    return text


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
        if _looks_like_labels(record, width):
            fitted = _fit_width(record, width)
            if len(fitted) == width:
                return index, fitted
            if len(record) < width:  # the data rows end in surplus delimiters: their blank tails are trimmed
                return index, record
    raise UnusableInput(
        f"no header row found: none of the first {_HEADER_SEARCH_ROWS} rows holds column names for a "
        f"{width}-column table"
    )


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
    with _gc_paused():
        return _read_checked_xlsx(data, sheet, limits)


def _read_checked_xlsx(data: bytes, sheet: str | None, limits: ReadLimits) -> RawTable:
    try:
        workbook = python_calamine.CalamineWorkbook.from_object(io.BytesIO(data))
        names = workbook.sheet_names
        if sheet is not None and sheet not in names:
            raise UnusableInput(f"the workbook has no sheet named {sheet!r}; its sheets are {', '.join(names)}")
        if not names:
            raise UnusableInput("the workbook has no sheets")
        chosen = workbook.get_sheet_by_name(sheet) if sheet is not None else workbook.get_sheet_by_index(0)
        last_row, last_column = chosen.end or (-1, -1)  # 0-based position of the last used cell
        if last_column + 1 > limits.max_columns:
            raise UnusableInput(f"the sheet has {last_column + 1} columns; the limit is {limits.max_columns}")
        if last_row + 1 > limits.max_rows + _HEADER_SEARCH_ROWS:
            raise UnusableInput(f"the sheet has more than {limits.max_rows} rows; the limit is {limits.max_rows}")
        values = chosen.to_python(skip_empty_area=False)
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
