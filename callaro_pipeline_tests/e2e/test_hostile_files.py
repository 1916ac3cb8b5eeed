"""Hostile and broken files, generated here (no binaries committed): each is refused with exit 2 and one line on
stderr, or read correctly, never read as a wrong table.

The far-corner .xlsx aborted the whole process inside python-calamine (exit 134), so it is read in a child
process with a capped address space: a regression kills the child, not the test run.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import resource
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import openpyxl
import pytest

from callaro_pipeline.cli.app import main
from callaro_pipeline.core.errors import UnusableInput
from callaro_pipeline.core.landing import land_upload
from callaro_pipeline.core.reading import read_table
from callaro_pipeline.defs.automation.sensors import dropped_files

SECRET = "Zelda Quux"


def cli(*args: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def assert_refused(code: int, err: str, *expected: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in lines[0], lines[0]
    assert SECRET not in err


# --- .xlsx with a cell at the sheet's far corner ------------------------------------------------------------


def xlsx_with_cells(cells: dict[str, object], rows: list[list[object]] | None = None) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Contacts"
    for row in rows or [["First Name", "Phone"], [SECRET, "4155550134"], ["Bob", "4155550135"]]:
        sheet.append(row)
    for ref, value in cells.items():
        sheet[ref] = value
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _limit_memory() -> None:  # the child may not take the machine down if the guard regresses
    resource.setrlimit(resource.RLIMIT_AS, (4 * 1024**3, 4 * 1024**3))


def read_in_child(path: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        "from callaro_pipeline.core.errors import CallaroError\n"
        "from callaro_pipeline.core.reading import read_table\n"
        "try:\n"
        "    t = read_table(open(sys.argv[1], 'rb').read(), sys.argv[1])\n"
        "    print('rows', t.rows.height)\n"
        "except CallaroError as e:\n"
        "    print(e, file=sys.stderr); sys.exit(2)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_memory,  # noqa: PLW1509 - no threads started before this in the child
        env={**os.environ, "RUST_BACKTRACE": "0"},
    )


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ({"XFD1048576": "x"}, "XFD1048576"),  # 16,384 x 1,048,576 cells: ~512 GB in the reader
        ({"SF1048576": 1}, "SF1048576"),  # within the column limit, still ~16 GB
    ],
    ids=["far-corner", "far-below"],
)
def test_xlsx_with_a_value_at_the_far_corner_is_refused_without_aborting(
    tmp_path: Path, cells: dict[str, object], expected: str
) -> None:
    path = tmp_path / "tiny.xlsx"
    path.write_bytes(xlsx_with_cells(cells))
    assert path.stat().st_size < 10_000
    done = read_in_child(path)
    assert done.returncode == 2, (done.returncode, done.stderr[-500:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "stray cells" in lines[0]


def test_xlsx_far_corner_through_the_cli_is_one_line_and_exit_2(callaro_env: Path, tmp_path: Path) -> None:
    path = tmp_path / "tiny.xlsx"
    path.write_bytes(xlsx_with_cells({"XFD1048576": "x"}))
    done = subprocess.run(
        [sys.executable, "-m", "callaro_pipeline.cli", "preview", str(path), "--campaign", "c"],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limit_memory,  # noqa: PLW1509
    )
    assert done.returncode == 2, done.stderr[-500:]
    assert len(done.stderr.strip().splitlines()) == 1 and "XFD1048576" in done.stderr


def test_xlsx_whose_dimension_or_empty_styled_cell_is_at_the_far_corner_is_read(tmp_path: Path) -> None:
    """Only cells with content are allocated: a claimed <dimension> or a styled empty cell changes nothing."""
    data = xlsx_with_cells({})
    parts = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in parts.infolist():
            body = parts.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                text = body.decode()
                text = text.replace('<dimension ref="A1:B3"/>', '<dimension ref="A1:XFD1048576"/>')
                text = text.replace("</sheetData>", '<row r="1048576"><c r="XFD1048576" s="0"/></row></sheetData>')
                body = text.encode()
            archive.writestr(info, body)
    path = tmp_path / "claimed.xlsx"
    path.write_bytes(out.getvalue())
    done = read_in_child(path)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == "rows 2"


def test_xlsx_far_cell_guard_reads_only_the_sheet_that_is_imported() -> None:
    workbook = openpyxl.Workbook()
    workbook.active.title = "Contacts"
    workbook.active.append(["First Name", "Phone"])
    workbook.active.append(["Ann", "4155550134"])
    workbook.create_sheet("Junk")["XFD1048576"] = "x"
    buffer = io.BytesIO()
    workbook.save(buffer)
    assert read_table(buffer.getvalue(), "b.xlsx").rows.height == 1
    with pytest.raises(UnusableInput, match="XFD1048576"):
        read_table(buffer.getvalue(), "b.xlsx", sheet="Junk")


# --- not regular files: FIFOs, symbolic links ----------------------------------------------------------------


def test_a_fifo_is_not_a_regular_file(callaro_env: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "contacts.csv"
    os.mkfifo(fifo)
    for command in (("import", fifo, "--campaign", "c"), ("preview", fifo, "--campaign", "c")):
        code, _, err = cli(*command)
        assert_refused(code, err, "FIFO", "not a regular file")
        assert "no such file" not in err


def test_a_symbolic_link_is_refused_never_followed(callaro_env: Path, tmp_path: Path) -> None:
    secret = tmp_path / "passwd"
    secret.write_text(f"first_name,phone\n{SECRET},4155550134\n")
    link = tmp_path / "contacts.csv"
    link.symlink_to(secret)
    for command in (("import", link, "--campaign", "c"), ("preview", link, "--campaign", "c")):
        code, _, err = cli(*command)
        assert_refused(code, err, "symbolic link", "not a regular file")
    uploads = callaro_env / "uploads"
    assert not uploads.exists() or not any(uploads.rglob("original*"))


def test_landing_refuses_links_and_fifos_itself(tmp_path: Path) -> None:
    target = tmp_path / "target.csv"
    target.write_text("a,b\n1,2\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    for source, kind in ((link, "symbolic link"), (fifo, "FIFO"), (tmp_path, "folder")):
        with pytest.raises(UnusableInput, match=kind):
            land_upload(source, campaign="c", original_name=source.name, uploads_dir=tmp_path / "uploads")
    assert not list((tmp_path / "uploads").glob("*/original*"))


def test_the_drop_folder_sensor_skips_links(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "vendor").mkdir(parents=True)
    outside = tmp_path / "passwd.csv"
    outside.write_text("root:x:0:0\n")
    (inbox / "vendor" / "planted.csv").symlink_to(outside)
    (inbox / "vendor" / "real.csv").write_text("first_name,phone\nAnn,4155550134\n")
    assert [d.path.name for d in dropped_files(inbox)] == ["real.csv"]


# --- binary and headerless files -----------------------------------------------------------------------------


def png_bytes() -> bytes:
    """A real 2x2 PNG whose text chunk holds UTF-16LE text: bytes a reader could take for a CSV."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    text = ("name,phone\r\n" + "Ann,4155550134\r\n" * 40).encode("utf-16-le")
    pixels = zlib.compress(b"\x00\xff\x00\x00\xff\x00\x00" * 2)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
        + chunk(b"zTXt", b"c\x00\x00" + text)
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


BINARIES = [
    ("png", png_bytes(), "PNG image"),
    ("jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(range(256)) * 8, "JPEG"),
    ("pdf", b"%PDF-1.7\n" + b"1 0 obj << /Type /Catalog >> endobj\n" * 20, "PDF"),
    ("gzip", b"\x1f\x8b" + zlib.compress(b"name,phone\n" * 50), "gzip"),
    ("nul-heavy", b"name,phone\n" + b"\x00" * 500 + b"Ann,4155550134\n", "binary"),
    ("zip-not-xlsx", None, "not an .xlsx"),
]


@pytest.mark.parametrize(("data", "expected"), [b[1:] for b in BINARIES], ids=[b[0] for b in BINARIES])
def test_binary_files_are_refused_not_read_as_a_table(data: bytes | None, expected: str) -> None:
    if data is None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("contacts.csv", "name,phone\nAnn,4155550134\n")
        data = buffer.getvalue()
    with pytest.raises(UnusableInput, match=expected):
        read_table(data, "contacts.csv")


def test_png_through_the_cli_is_exit_2(callaro_env: Path, tmp_path: Path) -> None:
    path = tmp_path / "photo.csv"
    path.write_bytes(png_bytes())
    code, _, err = cli("import", path, "--campaign", "c")
    assert_refused(code, err, "PNG")


@pytest.mark.parametrize(
    "text",
    [
        "4155550134\n4155550135\n4155550136\n",
        f"{SECRET},Lee,,Acme\nBob,Ray,4155550135,Foo\nCy,Ro,4155550136,Bar\nDi,Su,4155550137,Baz\n",
        f"{SECRET},ann@example.com\nBob,bob@example.com\nCy,cy@example.com\n",
    ],
    ids=["phones-only", "first-row-has-a-blank-phone", "names-and-emails"],
)
def test_headerless_files_are_refused(callaro_env: Path, tmp_path: Path, text: str) -> None:
    with pytest.raises(UnusableInput, match="no header row"):
        read_table(text.encode(), "c.csv")
    path = tmp_path / "headerless.csv"
    path.write_text(text)
    code, _, err = cli("preview", path, "--campaign", "c")
    assert_refused(code, err, "no header row")


def test_a_header_with_an_unnamed_notes_column_is_still_a_header() -> None:
    table = read_table(b"First Name,Phone,\nAnn,4155550134,called\nBob,4155550135,\nCy,4155550136,later\n", "c.csv")
    assert table.columns == ["First Name", "Phone", "column_3"] and table.rows.height == 3


# --- encodings -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (
            "First Name,Phone\nJürgen,4155550134\n".encode("cp1252") + "Jürgen,4155550135\n".encode(),
            ("line 2", "line 3"),
        ),
        (
            "First Name,Phone\nJürgen,4155550134\nJosé,4155550136\n".encode() + "Müller,4155550135\n".encode("cp1252"),
            ("line 4", "line 2"),
        ),
    ],
    ids=["utf8-after-cp1252", "cp1252-after-utf8"],
)
def test_a_file_that_switches_encoding_is_refused_naming_the_lines(data: bytes, lines: tuple[str, str]) -> None:
    with pytest.raises(UnusableInput, match="mixes text encodings") as refused:
        read_table(data, "c.csv")
    message = str(refused.value)
    assert all(line in message for line in lines) and "Jürgen" not in message


def test_windows_1252_and_utf16_files_are_still_read() -> None:
    for data in (
        "First Name,Phone\nJürgen,4155550134\nRené €,4155550135\n".encode("cp1252"),
        codecs.BOM_UTF16_LE + "First Name,Phone\nJürgen,4155550134\n".encode("utf-16-le"),
        "First Name,Phone\nJürgen,4155550134\n".encode("utf-16-le"),
    ):
        assert read_table(data, "c.csv").rows["First Name"][0] == "Jürgen"


def test_already_mojibaked_names_are_rejected_as_garbled(callaro_env: Path, tmp_path: Path) -> None:
    path = tmp_path / "double.csv"
    path.write_text("First Name,Phone\nJÃ¼rgen,4155550134\nAnn,4155550135\n", encoding="utf-8")
    code, out, err = cli("preview", path, "--campaign", "c")
    assert code == 0, err
    assert "garbled_text" in out and "would import 1, reject 1" in out


# --- summary lines under the data ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "footer",
    [
        "Grand Totals (3 records),,\n",
        "Total: 3 contacts\n",
        "Count: 3\n",
        ',,\n"Grand Totals (3 records)",,\n\nConfidential Information - Do Not Distribute\n'
        "Copyright (c) 2000-2026 salesforce.com, inc. All rights reserved.\n",
    ],
    ids=["grand-totals", "total-contacts", "count", "salesforce-report-footer"],
)
def test_footer_lines_are_not_rows(footer: str) -> None:
    data = "First Name,Phone,Company\nAnn,4155550134,Acme\nBob,4155550135,Acme\nCy,4155550136,Total Gym\n" + footer
    table = read_table(data.encode(), "report.csv")
    assert table.rows.height == 3 and table.malformed.is_empty()
    assert table.footer_rows >= 1


def test_a_last_row_that_only_looks_like_a_total_is_kept() -> None:
    data = b"Company,Phone\nAcme,4155550134\nTotal Gym,\n"
    table = read_table(data, "c.csv")
    assert table.rows.height == 2 and table.footer_rows == 0


def test_xlsx_footer_rows_are_not_rows() -> None:
    data = xlsx_with_cells(
        {},
        rows=[["First Name", "Phone"], ["Ann", "4155550134"], ["Bob", "4155550135"], [], ["Grand Totals (2 records)"]],
    )
    table = read_table(data, "r.xlsx")
    assert table.rows.height == 2 and table.footer_rows == 1
