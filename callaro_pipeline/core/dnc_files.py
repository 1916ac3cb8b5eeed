"""DNC list files, the pure part: read a list file into distinct numbers, fail closed on any unreadable line.

Numbers are BIGINT E.164 digits without '+'. National registry files come in the registry's layouts: one
10-digit number per line, or `areacode,number` lines (`415,5550134`), with or without a header line; other
lists are CSV/TSV files with a phone column, in any phone format. A file that cannot be read, has a non-blank
line (or phone cell) that is not a number, or has no valid number is refused whole (`DncFileRefused`, exit 2:
the count and the first line numbers, never the lines). Loading them into the warehouse is
`callaro_pipeline.storage.dnc_loads`.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import polars as pl

from callaro_pipeline.core.errors import ConfigError, DncUnavailable
from callaro_pipeline.core.phones import normalize_phones
from callaro_pipeline.core.project_paths import check_name

FIXED_SOURCES = ("internal", "national", "call_outcome")
NANP_OFFSET = 10_000_000_000  # 10-digit NANP number -> E.164 digits with country code 1
_BARE_LINE = re.compile(r"^\s*(\+?1?[2-9]\d{2}[2-9]\d{6}|[2-9]\d{2}\s*,\s*[2-9]\d{6})\s*$")
_FIRST_BAD_LINES = 5
_PHONE_HEADERS = [re.compile(p, re.IGNORECASE) for p in (r"phone|mobile|cell|msisdn", r"tel", r"number")]  # by priority
_SNIFF_BYTES = 65536


class DncFileRefused(DncUnavailable):
    """A list file that cannot be read as a whole: refused, nothing loaded (usage-level problem: exit 2)."""

    exit_code = 2


def check_source(source: str) -> str:
    if source in FIXED_SOURCES:
        return source
    if source.startswith("campaign:"):
        check_name(source.removeprefix("campaign:"), "campaign name")
        return source
    raise ConfigError(f"unknown DNC source {source!r}: use {', '.join(FIXED_SOURCES)} or campaign:<name>")


def area_code_counts(numbers: pl.DataFrame) -> pl.DataFrame:
    """NANP numbers (E.164 digits 1AAAEEELLLL) per area code AAA: the first position of each area code in the
    sorted numbers, by binary search (a list read from a file comes sorted from `_distinct`: 100M numbers are
    counted in microseconds instead of a 100M-row group-by)."""
    number = numbers.get_column("number")
    number = number if number.flags["SORTED_ASC"] else number.sort()
    codes = pl.int_range(0, 1001, dtype=pl.Int64, eager=True)
    starts = number.search_sorted(NANP_OFFSET + codes * 10_000_000, side="left")
    return (
        pl.DataFrame({"area_code": codes.head(1000).cast(pl.Int16), "rows_loaded": starts.diff().slice(1)})
        .with_columns(pl.col("rows_loaded").cast(pl.Int64))
        .filter(pl.col("rows_loaded") > 0)
    )


def read_numbers(path: Path, name: str, *, source: str, default_region: str) -> tuple[pl.DataFrame, int]:
    """Distinct valid numbers (column `number`, Int64) and the count of rejected non-blank lines/cells."""
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if _is_utf16(head):
        return _read_csv_numbers(path, name, default_region)
    if source == "national" or _looks_like_bare_lines(head):
        return read_bare_lines(path, name)
    return _read_csv_numbers(path, name, default_region)


def read_bare_lines(path: Path, name: str) -> tuple[pl.DataFrame, int]:
    """Registry layouts: one 10-digit number per line (or 1 + 10 digits), or `areacode,number` lines
    (`415,5550134`), with or without a header line; read in bulk by polars.

    Lines that are exactly the digits (or exactly `AAA,NNNNNNN`) are read as integers: a line of that width
    whose integer value lies in the NANP range can only be those digits (polars' integer cast takes a sign and
    digits, nothing else), and the exchange digit is checked arithmetically. The other lines (punctuation,
    spaces: few) are read with the general rule. A non-blank line read by neither refuses the whole file
    (DncFileRefused), except a first line with letters (a header). All of it is column expressions over the
    whole file: a per-batch Python callback (the streaming engine's map_batches) doubled the time of a
    100M-line file.
    """
    try:
        lines = pl.read_csv(
            path,
            has_header=False,
            separator="\x01",
            quote_char=None,
            encoding="utf8-lossy",
            schema={"line": pl.Utf8},
            truncate_ragged_lines=True,
        )
    except (pl.exceptions.PolarsError, OSError):
        # Polars quotes the offending line (PII): report the file only.
        raise DncFileRefused(f"DNC file {name} cannot be read as one number per line") from None
    line = pl.col("line")
    value = line.cast(pl.Int64, strict=False)
    width = line.str.len_bytes()
    exchange_ok = (value // 1_000_000) % 10 >= 2
    pair_area = line.str.slice(0, 3).cast(pl.Int64, strict=False)
    pair_local = line.str.slice(4, 7).cast(pl.Int64, strict=False)
    pair = pair_area * 10_000_000 + pair_local
    exact = (
        pl.when((width == 10) & value.is_between(2_000_000_000, 9_999_999_999) & exchange_ok)
        .then(value + NANP_OFFSET)
        .when((width == 11) & value.is_between(12_000_000_000, 19_999_999_999) & exchange_ok)
        .then(value)
        .when(
            (width == 11)
            & (line.str.slice(3, 1) == ",")
            & pair_area.is_between(200, 999)
            & pair_local.is_between(2_000_000, 9_999_999)
        )
        .then(pair + NANP_OFFSET)
    )
    read = lines.lazy().select(exact.alias("number"), line).collect()  # lazy: `value` is computed once
    del lines
    stripped = line.str.strip_chars()
    digits = stripped.str.replace_all(r"[\s().+-]", "")
    is_nanp = digits.str.contains(r"^1?[2-9]\d{2}[2-9]\d{6}$").fill_null(False)
    pair_parts = stripped.str.extract_groups(r"^\(?([2-9]\d{2})\)?\s*,\s*([2-9]\d{2}-?\d{4})$")
    pair_digits = pair_parts.struct.field("1") + pair_parts.struct.field("2").str.replace("-", "")
    rest = (
        read.with_row_index("line_number", offset=1)
        .filter(pl.col("number").is_null())
        .select(
            "line_number",
            pl.when(is_nanp)
            .then(digits.str.slice(-10).cast(pl.Int64) + NANP_OFFSET)
            .otherwise(pair_digits.cast(pl.Int64, strict=False) + NANP_OFFSET)
            .alias("number"),
            (stripped.str.len_bytes().fill_null(0) > 0).alias("non_blank"),
            stripped.str.contains(r"[A-Za-z]").fill_null(False).alias("letters"),
        )
    )
    bad = rest.filter(pl.col("non_blank") & pl.col("number").is_null())
    if bad.height:  # a header: the file's first non-blank line, with letters ("areacode,number", "phone")
        first_line = read.select(
            (stripped.str.len_bytes().fill_null(0) > 0).arg_true().first().alias("first") + 1
        ).item()
        bad = bad.filter(~(pl.col("letters") & (pl.col("line_number") == first_line)))
    _refuse_bad_lines(name, bad.get_column("line_number"))
    numbers = read.get_column("number")
    del read
    return _distinct(pl.concat([numbers.drop_nulls(), rest.get_column("number").drop_nulls()])), 0


def _refuse_bad_lines(name: str, line_numbers: pl.Series) -> None:
    """Fail closed: a list with a line that cannot be read is refused whole (count and first line numbers)."""
    if line_numbers.is_empty():
        return
    first = ", ".join(str(n) for n in line_numbers.sort().head(_FIRST_BAD_LINES).to_list())
    raise DncFileRefused(
        f"DNC file {name} refused: {line_numbers.len()} line(s) cannot be read as a phone number (first: line "
        f"{first}); nothing loaded, the previous list stays current"
    )


def _distinct(numbers: pl.Series) -> pl.DataFrame:
    """The distinct numbers, sorted (sorting first makes `unique` a linear pass, and the store compresses it)."""
    distinct = numbers.rename("number").sort().unique()  # on a sorted series: a linear pass, output sorted
    return distinct.set_sorted().to_frame()


def _read_csv_numbers(path: Path, name: str, default_region: str) -> tuple[pl.DataFrame, int]:
    """A CSV/TSV list: the column named like phone/number/tel, else the first; any phone format."""
    text = _decode(path.read_bytes())
    if not text.strip():
        return pl.DataFrame(schema={"number": pl.Int64}), 0
    first_line = text.split("\n", 1)[0]
    separator = max(",;\t|", key=first_line.count) if any(c in first_line for c in ",;\t|") else ","
    try:
        table = pl.read_csv(
            io.StringIO(text),
            has_header=False,
            infer_schema=False,
            separator=separator,
            truncate_ragged_lines=True,
        )
    except pl.exceptions.PolarsError:
        raise DncUnavailable(f"DNC file {name} is not a readable CSV") from None
    if table.is_empty():
        return pl.DataFrame(schema={"number": pl.Int64}), 0
    header = [str(cell or "") for cell in table.row(0)]
    has_header = any(ch.isalpha() for cell in header for ch in cell)
    column = table.columns[0]
    if has_header:
        named = [
            col
            for pattern in _PHONE_HEADERS
            for col, name in zip(table.columns, header, strict=True)
            if pattern.search(name)
        ]
        column = named[0] if named else column
        table = table.slice(1)
    cells = table[column]
    normalized = normalize_phones(cells, default_region=default_region)
    numbers = normalized.select(e164_to_number(pl.col("phone_e164")).alias("number"))
    non_blank = (cells.str.strip_chars().str.len_chars() > 0).fill_null(False)
    offset = 2 if has_header else 1
    bad = pl.DataFrame({"line_number": pl.int_range(offset, offset + table.height, eager=True), "bad": non_blank})
    bad = bad.filter(pl.col("bad") & numbers.get_column("number").is_null())
    _refuse_bad_lines(name, bad.get_column("line_number"))
    return numbers.drop_nulls().unique(), 0


def normalize_to_numbers(raw: pl.Series, default_region: str) -> tuple[pl.DataFrame, int]:
    normalized = normalize_phones(raw, default_region=default_region)
    numbers = normalized.select(e164_to_number(pl.col("phone_e164")).alias("number"))
    rejected = numbers["number"].null_count()
    return numbers.drop_nulls().unique(), rejected


def e164_to_number(phone: pl.Expr) -> pl.Expr:
    return phone.cast(pl.Utf8).str.strip_prefix("+").cast(pl.Int64, strict=False)


def _looks_like_bare_lines(head: bytes) -> bool:
    lines = head.decode("latin-1").splitlines()
    if len(head) == _SNIFF_BYTES:
        lines = lines[:-1]  # the last sniffed line may be cut
    non_blank = [line for line in lines if line.strip()]
    if non_blank and any(ch.isalpha() for ch in non_blank[0]):
        non_blank = non_blank[1:]  # a header line ("areacode,number")
    return bool(non_blank) and all(_BARE_LINE.match(line) for line in non_blank)


def _is_utf16(head: bytes) -> bool:
    return head.startswith((b"\xff\xfe", b"\xfe\xff"))


def _decode(data: bytes) -> str:
    if _is_utf16(data):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")
