"""Reading .xlsx workbooks: the archive and its used range are checked (zip bombs, huge sparse ranges) before
the sheet is read."""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Sequence
from xml.etree import ElementTree

import polars as pl
import python_calamine

from callaro_pipeline.core.errors import UnusableInput
from callaro_pipeline.core.reading_csv import drop_footer_rows, find_header_row
from callaro_pipeline.core.table_frames import (
    HEADER_SEARCH_ROWS,
    MEGABYTE,
    ROW_NUMBER,
    SAMPLE_RECORDS,
    RawTable,
    ReadLimits,
    cell_text,
    finish_raw_table,
    gc_paused,
    size_text,
    unique_column_names,
)

_MAX_ZIP_ENTRIES = 10_000
_MAX_COMPRESSION_RATIO = 200  # real sheet XML compresses 5-50x; deflate bombs reach ~1000x
_RATIO_CHECK_MIN_BYTES = 1024 * 1024
# A sheet's used range is allocated whole by the reader (python-calamine): one value at XFD1048576 asks for
# ~512 GB and aborts the process. A range far larger than the cells it holds is refused before calamine runs.
_MAX_SPARSE_AREA = 5_000_000  # cells: a range up to this size is read whatever it holds
_MAX_AREA_PER_CELL = 10  # beyond it, the range may be at most this many times the cells present
_CELL_REF = re.compile(rb"<(?:\w+:)?c\b[^>]*?\sr=\"\$?([A-Za-z]+)\$?([0-9]+)\"[^>]*?(/?)>")
_XML_CHUNK = 4 * MEGABYTE


def read_xlsx(data: bytes, sheet: str | None, limits: ReadLimits) -> RawTable:
    _check_workbook_archive(data, limits)
    _check_used_range(data, sheet, limits)
    with gc_paused():
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
        if last_row + 1 > limits.max_rows + HEADER_SEARCH_ROWS:
            raise UnusableInput(f"the sheet has more than {limits.max_rows} rows; the limit is {limits.max_rows}")
        values = chosen.to_python(skip_empty_area=False)
        footer_rows = drop_footer_rows(values)
    except UnusableInput:
        raise
    except Exception as exc:  # calamine raises many error types whose messages may quote cell content
        raise UnusableInput(f"the workbook cannot be read ({type(exc).__name__})") from None
    width = max(map(len, values), default=0)
    if width == 0:
        raise UnusableInput(f"the sheet {chosen.name!r} is empty")
    sample = [[cell_text(value) for value in row] for row in values[:SAMPLE_RECORDS]]
    header_index, header = find_header_row(sample, width)
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
    return finish_raw_table(
        frame,
        unique_column_names(header),
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
            f"the workbook expands to {size_text(declared)}; the limit is {size_text(limits.max_xlsx_uncompressed_bytes)}"
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
        if last_row > limits.max_rows + HEADER_SEARCH_ROWS:
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
                while stream.read(MEGABYTE):
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
    return [cell_text(value) for value in column]
