"""Landing: original bytes kept with sha256 under a fresh upload id; hostile file names never become paths."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callaro_pipeline.core.errors import ConfigError, UnusableInput
from callaro_pipeline.core.landing import display_name, find_previous_upload, land_upload, make_upload_id
from callaro_pipeline.core.project_paths import check_name

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
CONTENT = b"name,phone\r\nAnn,+14155550134\r\n"


def tree(root: Path) -> set[Path]:
    return {path.relative_to(root) for path in root.rglob("*")}


def test_lands_bytes_with_hash_and_metadata(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    landed = land_upload(
        CONTENT, campaign="spring-promo", original_name="Leads March.csv", uploads_dir=uploads, now=NOW
    )

    assert re.fullmatch(r"spring-promo-20260304t050607-[0-9a-f]{8}-[0-9a-f]{6}", landed.upload_id)
    assert landed.sha256 == hashlib.sha256(CONTENT).hexdigest()
    assert landed.upload_id.split("-")[-2] == landed.sha256[:8]
    assert landed.stored_path == (uploads / landed.upload_id / "original.csv").resolve()
    assert landed.stored_path.read_bytes() == CONTENT
    assert (landed.size_bytes, landed.received_at, landed.previous_upload_id) == (len(CONTENT), NOW, None)
    assert landed.original_name == "Leads March.csv"
    meta = json.loads((uploads / landed.upload_id / "meta.json").read_text(encoding="utf-8"))
    assert meta == {
        "upload_id": landed.upload_id,
        "campaign": "spring-promo",
        "original_name": "Leads March.csv",
        "stored_name": "original.csv",
        "sha256": landed.sha256,
        "size_bytes": len(CONTENT),
        "received_at": "2026-03-04T05:06:07+00:00",
        "previous_upload_id": None,
    }
    assert tree(uploads) == {
        Path(landed.upload_id),
        Path(landed.upload_id, "original.csv"),
        Path(landed.upload_id, "meta.json"),
    }


def test_lands_a_file_path_unchanged(tmp_path: Path) -> None:
    source = tmp_path / "incoming.xlsx"
    source.write_bytes(bytes(range(256)) * 5000)
    landed = land_upload(source, campaign="c1", original_name=source.name, uploads_dir=tmp_path / "uploads")
    assert landed.stored_path.name == "original.xlsx"
    assert landed.stored_path.read_bytes() == source.read_bytes()
    assert landed.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert landed.received_at.tzinfo is not None


HOSTILE_NAMES = [
    "../../evil.csv",
    "/etc/passwd",
    "..\\..\\windows\\evil.csv",
    "C:\\Users\\x\\leads.csv",
    "quote\"s'.csv",
    "nul\x00byte.csv",
    "$(rm -rf ~).csv",
    "; rm -rf / #.csv",
    "`id`|tee x.tsv",
    "ünïcødé 📞 ﬁle.xlsx",
    "\u202egnp.csv",  # right-to-left override: displays as "vsc.png"
    "\udcff-undecodable.csv",
    "",
    ".",
    "..",
    "leads.csv/..",
    "leads.CSV",
    "leads.exe",
    "leads.csv.exe",
    "x" * 5000 + ".csv",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_file_names_are_metadata_only(tmp_path: Path, name: str) -> None:
    uploads = tmp_path / "area" / "uploads"
    uploads.mkdir(parents=True)
    before = tree(tmp_path)

    landed = land_upload(CONTENT, campaign="c1", original_name=name, uploads_dir=uploads, now=NOW)

    written = tree(tmp_path) - before
    assert all(path.parts[:2] == ("area", "uploads") for path in written)
    assert written == {
        Path("area/uploads", landed.upload_id),
        Path("area/uploads", landed.upload_id, landed.stored_path.name),
        Path("area/uploads", landed.upload_id, "meta.json"),
    }
    assert landed.stored_path.name in {"original.csv", "original.tsv", "original.txt", "original.xlsx", "original.bin"}
    assert landed.stored_path.parent.parent == uploads.resolve()
    assert not re.search(r"[\x00-\x1f\u202e\ud800-\udfff]", landed.original_name)
    assert len(landed.original_name) <= 255
    meta = json.loads((uploads / landed.upload_id / "meta.json").read_text(encoding="utf-8"))
    assert meta["original_name"] == landed.original_name


@pytest.mark.parametrize(
    ("name", "extension"),
    [
        ("a.csv", ".csv"),
        ("A.TSV", ".tsv"),
        ("a.txt", ".txt"),
        ("a.xlsx", ".xlsx"),
        ("a.xls", ".bin"),
        ("a.csv.exe", ".bin"),
        ("csv", ".bin"),
        (".csv", ".bin"),
    ],
)
def test_stored_extension_comes_from_an_allowlist(tmp_path: Path, name: str, extension: str) -> None:
    landed = land_upload(CONTENT, campaign="c1", original_name=name, uploads_dir=tmp_path)
    assert landed.stored_path.name == f"original{extension}"


def test_display_name_keeps_what_a_user_recognises() -> None:
    assert display_name("../Leads  2026\t(final).csv") == "../Leads 2026 (final).csv"
    assert display_name("Ärzte.csv") == "Ärzte.csv"
    assert display_name("\x00\x01") == "upload"
    long_name = display_name("x" * 5000 + ".csv")
    assert len(long_name) == 255 and long_name.endswith("…xxxxxxxxxx.csv")


@pytest.mark.parametrize("campaign", ["../x", "Spring", "a/b", "", "x" * 64, "-lead", "a b", "a\x00"])
def test_invalid_campaign_names_are_refused_before_writing(tmp_path: Path, campaign: str) -> None:
    with pytest.raises(ConfigError):
        land_upload(CONTENT, campaign=campaign, original_name="a.csv", uploads_dir=tmp_path / "uploads")
    assert not (tmp_path / "uploads").exists()


def test_upload_ids_are_valid_names_never_reused_and_truncate_long_campaigns() -> None:
    sha = hashlib.sha256(CONTENT).hexdigest()
    long_campaign = "a" * 63
    upload_id = make_upload_id(long_campaign, sha, NOW)
    assert check_name(upload_id, "upload id") == upload_id
    assert len(upload_id) <= 63
    assert upload_id.startswith("a" * 20) and f"-20260304t050607-{sha[:8]}-" in upload_id
    assert len({make_upload_id("c1", sha, NOW) for _ in range(200)}) == 200


def test_same_bytes_twice_links_to_the_previous_upload(tmp_path: Path) -> None:
    first = land_upload(CONTENT, campaign="c1", original_name="a.csv", uploads_dir=tmp_path, now=NOW)
    second = land_upload(CONTENT, campaign="c1", original_name="renamed.csv", uploads_dir=tmp_path, now=NOW)
    third = land_upload(CONTENT, campaign="c1", original_name="again.csv", uploads_dir=tmp_path)
    assert first.upload_id != second.upload_id
    assert second.previous_upload_id == first.upload_id
    assert third.previous_upload_id in {first.upload_id, second.upload_id}
    assert find_previous_upload(tmp_path, "c1", first.sha256) == third.upload_id
    assert land_upload(CONTENT, campaign="c2", original_name="a.csv", uploads_dir=tmp_path).previous_upload_id is None
    assert (
        land_upload(CONTENT + b"x", campaign="c1", original_name="a.csv", uploads_dir=tmp_path).previous_upload_id
        is None
    )


def test_previous_upload_lookup_can_come_from_the_caller(tmp_path: Path) -> None:
    asked: list[tuple[str, str]] = []

    def lookup(campaign: str, sha256: str) -> str | None:
        asked.append((campaign, sha256))
        return "c1-from-the-warehouse"

    landed = land_upload(CONTENT, campaign="c1", original_name="a.csv", uploads_dir=tmp_path, find_previous=lookup)
    assert landed.previous_upload_id == "c1-from-the-warehouse"
    assert asked == [("c1", landed.sha256)]


def test_incomplete_or_foreign_folders_are_ignored(tmp_path: Path) -> None:
    sha = hashlib.sha256(CONTENT).hexdigest()
    (tmp_path / "c1-interrupted").mkdir()
    (tmp_path / "c1-interrupted" / "original.csv").write_bytes(CONTENT)
    (tmp_path / "c1-garbled").mkdir()
    (tmp_path / "c1-garbled" / "meta.json").write_text("{not json", encoding="utf-8")
    assert find_previous_upload(tmp_path, "c1", sha) is None
    assert find_previous_upload(tmp_path / "missing", "c1", sha) is None


def test_failed_landing_leaves_nothing_behind(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    with pytest.raises(UnusableInput, match="no such file"):
        land_upload(tmp_path / "missing.csv", campaign="c1", original_name="a.csv", uploads_dir=uploads)
    assert not uploads.exists() or list(uploads.iterdir()) == []
    uploads.mkdir()
    with pytest.raises(UnusableInput, match="folder"):  # passes no check, leaves no partial file
        land_upload(tmp_path, campaign="c1", original_name="a.csv", uploads_dir=uploads)
    assert list(uploads.iterdir()) == []
