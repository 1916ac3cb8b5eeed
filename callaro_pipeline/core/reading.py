"""Reading an uploaded file's bytes into a table of text: CSV/TSV (UTF-8, UTF-16, Windows-1252) and .xlsx.

Every value stays text (no type inference: `+1…` and leading zeros survive). Row numbers are the rows a
spreadsheet user sees: one record is one row even when a quoted cell spans lines, and title rows above the
header count. Error messages name rows and sizes, never cell values: those are personal data.
"""

from __future__ import annotations

from callaro_pipeline.core.errors import UnusableInput
from callaro_pipeline.core.reading_csv import read_delimited
from callaro_pipeline.core.reading_xlsx import read_xlsx
from callaro_pipeline.core.table_frames import RawTable, ReadLimits, size_text

TEXT_EXTENSIONS = (".csv", ".tsv", ".txt")
XLSX_EXTENSIONS = (".xlsx",)
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
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


def read_table(data: bytes, filename: str, *, sheet: str | None = None, limits: ReadLimits = ReadLimits()) -> RawTable:
    """Read an upload's bytes as a table of text; the content decides the format, the name only must be allowed."""
    if not data:
        raise UnusableInput("the file is empty")
    if len(data) > limits.max_bytes:
        raise UnusableInput(f"the file is {size_text(len(data))}; the limit is {size_text(limits.max_bytes)}")
    if data.startswith(_ZIP_MAGICS):
        return read_xlsx(data, sheet, limits)
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
    return read_delimited(data, limits)


def file_extension(filename: str) -> str:
    """The lowercased extension of the last path component, whatever separators the name uses."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, extension = base.rpartition(".")
    return f".{extension.lower()}" if dot and stem else ""
