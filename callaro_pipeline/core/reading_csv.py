"""Reading delimited text (CSV/TSV): delimiter detection, the header finder, footer lines and rows, quoting repair."""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import polars as pl

from callaro_pipeline.core.encodings import decode_text
from callaro_pipeline.core.errors import UnusableInput
from callaro_pipeline.core.table_frames import (
    HEADER_SEARCH_ROWS,
    ROW_NUMBER,
    SAMPLE_RECORDS,
    RawTable,
    ReadLimits,
    cell_text,
    cells_frame,
    chunk_frame,
    finish_raw_table,
    fit_width,
    gc_paused,
    unique_column_names,
)

DELIMITERS = ("\t", "|", ";", ",")  # tie-break order: tabs and pipes rarely occur inside values, commas often do
_SAMPLE_CHARS = 1024 * 1024
_CHUNK_ROWS = 100_000
_NUMBER_LIKE = re.compile(r"[+\-]?[\d\s().,/:-]*(?:[eE][+\-]?\d+)?")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
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


def read_delimited(data: bytes, limits: ReadLimits) -> RawTable:
    text, encoding = decode_text(data)
    if not text.strip():
        raise UnusableInput("the file holds only blank lines")
    delimiter, sample = _detect_delimiter(text)
    text, footer_rows = _drop_footer_lines(text, delimiter)
    if footer_rows:
        sample = _sample_records(text, delimiter)
    width = _dominant_width(sample)
    if width > limits.max_columns:
        raise UnusableInput(f"the table has {width} columns; the limit is {limits.max_columns}")
    header_index, header = find_header_row(sample, width)
    plain = _parse_plain(text, delimiter, header_index, len(header), limits)
    malformed: list[tuple[int, str]] = []
    if plain is not None:
        frame = plain
    else:
        with gc_paused():
            frame, malformed = _parse_records(text, delimiter, header_index, len(header), limits)
    return finish_raw_table(
        frame,
        unique_column_names(header),
        malformed,
        encoding=encoding,
        delimiter=delimiter,
        header_row=header_index + 1,
        sheet=None,
        footer_rows=footer_rows,
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
        records.extend(itertools.islice(_csv_records(text[:_SAMPLE_CHARS], delimiter), SAMPLE_RECORDS))
    except UnusableInput:
        return records  # the records before a parse error; the full parse reports the error with its row
    if len(text) > _SAMPLE_CHARS and len(records) < SAMPLE_RECORDS:
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


def find_header_row(sample: list[list[str]], width: int) -> tuple[int, list[str]]:
    """The first record that reads as column labels for rows of `width` cells (title rows above are skipped)."""
    for index, record in enumerate(sample[:HEADER_SEARCH_ROWS]):
        if _looks_like_labels(record, width) and not _blank_over_data(record, sample[index + 1 :]):
            fitted = fit_width(record, width)
            if len(fitted) == width:
                return index, fitted
            if len(record) < width:  # the data rows end in surplus delimiters: their blank tails are trimmed
                return index, record
    raise UnusableInput(
        f"no header row found: none of the first {HEADER_SEARCH_ROWS} rows holds column names for a "
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


def drop_footer_rows(values: list[list[Any]]) -> int:
    """The sheet version of `_drop_footer_lines`: trailing rows dropped from `values` in place; their count."""
    dropped = 0
    while values and dropped < _MAX_FOOTER_ROWS:
        cells = [cell_text(value) for value in values[-1]]
        if any(cell.strip() for cell in cells) and not _footer_cell(cells):
            break
        if any(cell.strip() for cell in cells):
            dropped += 1
        values.pop()
    return dropped


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
        frame, chunk_malformed = chunk_frame(chunk, next_row, width)
        frames.append(frame)
        malformed.extend(chunk_malformed)
        next_row += len(chunk)
    return (pl.concat(frames) if frames else cells_frame([], [], width)), malformed


def _parse_plain(text: str, delimiter: str, header_index: int, width: int, limits: ReadLimits) -> pl.DataFrame | None:
    """The common case in bulk: quotes only around whole cells that need none ("", "Ann"), one line per record,
    every data line with exactly `width` cells and none blank. Then the csv module's records are simply the
    lines split at the delimiter with those quotes removed, and polars' reader (multi-threaded, no Python
    object per cell) gives the same cells (an empty cell reads as null, which `finish_raw_table` makes of "" anyway).
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
