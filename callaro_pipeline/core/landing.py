"""Landing: keep the original bytes of every upload, with their sha256, before anything reads them.

Layout: `<uploads_dir>/<upload_id>/original<ext>` plus `meta.json`. The user's file name is metadata only,
never a path component; the stored extension comes from an allowlist. Files appear atomically (temp name in
the same folder, then `os.replace`), and a folder without `meta.json` is an interrupted landing, ignored.

Only regular files are landed: a symbolic link (as the upload or in the drop-folder inbox) is refused, never
followed (a link to /etc/passwd would copy it into uploads/), and so are FIFOs, devices and folders. The check is
made on the open file descriptor (O_NOFOLLOW, fstat), so a file swapped for a link after the check is refused too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from callaro_pipeline.core.errors import UnusableInput
from callaro_pipeline.core.project_paths import check_name
from callaro_pipeline.core.reading import file_extension

STORED_EXTENSIONS = (".csv", ".tsv", ".txt", ".xlsx")
UNKNOWN_EXTENSION = ".bin"
META_FILE = "meta.json"
MAX_UPLOAD_ID_LENGTH = 63
MAX_DISPLAY_NAME_LENGTH = 255
_COPY_CHUNK_BYTES = 1024 * 1024
# controls, lone surrogates (undecodable OS names), and bidi overrides that make a name read as another
_UNDISPLAYABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


@dataclass(frozen=True)
class LandedUpload:
    upload_id: str
    campaign: str
    original_name: str
    stored_path: Path
    sha256: str
    size_bytes: int
    received_at: datetime
    previous_upload_id: str | None


def make_upload_id(campaign: str, sha256: str, now: datetime) -> str:
    """`<campaign>-<yyyymmddthhmmss>-<sha8>-<random>`: readable, path-safe, never reused (random suffix)."""
    tail = f"-{now:%Y%m%dt%H%M%S}-{sha256[:8].lower()}-{secrets.token_hex(3)}"
    return check_name(campaign[: MAX_UPLOAD_ID_LENGTH - len(tail)] + tail, "upload id")


def display_name(original_name: str) -> str:
    """The user's file name made safe to show and store as text (never to use as a path)."""
    text = " ".join(_UNDISPLAYABLE.sub(" ", unicodedata.normalize("NFC", str(original_name))).split())
    if len(text) > MAX_DISPLAY_NAME_LENGTH:  # shorten in the middle: the extension still names the format
        text = text[: MAX_DISPLAY_NAME_LENGTH - 15] + "…" + text[-14:]
    return text or "upload"


def check_source_file(path: Path) -> None:
    """Refuse what is not a regular file, in one clear line: missing, a symbolic link (never followed), a FIFO,
    a device, a socket or a folder."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise UnusableInput(f"no such file: {display_name(path.name)}") from None
    except OSError as error:
        raise UnusableInput(f"cannot read {display_name(path.name)}: {error.strerror}") from None
    if not stat.S_ISREG(mode):
        raise UnusableInput(
            f"{display_name(path.name)} is {_file_kind(mode)}, not a regular file: upload the file itself"
        )


def _file_kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link (links are not followed)"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def open_regular_file(path: Path) -> int:
    """A read-only descriptor of `path` if it is a regular file (not a link, FIFO, device...): O_NOFOLLOW and
    O_NONBLOCK (opening a FIFO does not wait for a writer), then fstat on what was opened."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise UnusableInput(f"no such file: {display_name(path.name)}") from None
    except OSError:
        check_source_file(path)  # a link (ELOOP) or another refusal, said clearly
        raise UnusableInput(f"cannot read {display_name(path.name)}") from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        raise UnusableInput(
            f"{display_name(path.name)} is {_file_kind(mode)}, not a regular file: upload the file itself"
        )
    if hasattr(os, "O_NONBLOCK"):
        os.set_blocking(descriptor, True)
    return descriptor


def stored_extension(original_name: str) -> str:
    extension = file_extension(original_name)
    return extension if extension in STORED_EXTENSIONS else UNKNOWN_EXTENSION


def land_upload(
    source: Path | bytes,
    *,
    campaign: str,
    original_name: str,
    uploads_dir: Path,
    now: datetime | None = None,
    find_previous: Callable[[str, str], str | None] | None = None,
) -> LandedUpload:
    """Store the upload's bytes and metadata under a fresh upload id; report an earlier identical upload.

    `find_previous(campaign, sha256)` lets the caller look earlier uploads up in its own records; by default
    the metadata in `uploads_dir` is scanned.
    """
    check_name(campaign, "campaign name")
    if not isinstance(source, bytes | bytearray | memoryview):
        check_source_file(Path(source))
    received_at = now or datetime.now(UTC)
    uploads_dir.mkdir(parents=True, exist_ok=True)
    incoming = uploads_dir / f".incoming-{secrets.token_hex(8)}.part"
    try:
        sha256, size = _copy_hashing(source, incoming)
        if find_previous is None:
            previous = find_previous_upload(uploads_dir, campaign, sha256)
        else:
            previous = find_previous(campaign, sha256)
        upload_id, upload_dir = _new_upload_dir(uploads_dir, campaign, sha256, received_at)
        stored_path = upload_dir / f"original{stored_extension(original_name)}"
        os.replace(incoming, stored_path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            incoming.unlink()
    landed = LandedUpload(
        upload_id=upload_id,
        campaign=campaign,
        original_name=display_name(original_name),
        stored_path=stored_path.resolve(),
        sha256=sha256,
        size_bytes=size,
        received_at=received_at,
        previous_upload_id=previous,
    )
    _write_meta(upload_dir, landed)
    return landed


def find_previous_upload(uploads_dir: Path, campaign: str, sha256: str) -> str | None:
    """The latest completed upload of the same bytes to the same campaign, from the stored metadata."""
    if not uploads_dir.is_dir():
        return None
    matches: list[tuple[str, str]] = []
    for meta_path in uploads_dir.glob(f"*/{META_FILE}"):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("campaign") == campaign and meta.get("sha256") == sha256:
            matches.append((str(meta.get("received_at", "")), meta_path.parent.name))
    return max(matches)[1] if matches else None


def _copy_hashing(source: Path | bytes, target: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(target, "xb") as out:
        if isinstance(source, bytes | bytearray | memoryview):
            data = bytes(source)
            digest.update(data)
            out.write(data)
            size = len(data)
        else:
            with os.fdopen(open_regular_file(Path(source)), "rb") as stream:
                while chunk := stream.read(_COPY_CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size


def _new_upload_dir(uploads_dir: Path, campaign: str, sha256: str, now: datetime) -> tuple[str, Path]:
    """mkdir without exist_ok: an id is used once even if two landings race to the same second and hash."""
    for _ in range(5):
        upload_id = make_upload_id(campaign, sha256, now)
        upload_dir = uploads_dir / upload_id
        try:
            upload_dir.mkdir()
        except FileExistsError:
            continue
        return upload_id, upload_dir
    raise RuntimeError("could not allocate a fresh upload id after 5 attempts")


def _write_meta(upload_dir: Path, landed: LandedUpload) -> None:
    meta = {
        "upload_id": landed.upload_id,
        "campaign": landed.campaign,
        "original_name": landed.original_name,
        "stored_name": landed.stored_path.name,
        "sha256": landed.sha256,
        "size_bytes": landed.size_bytes,
        "received_at": landed.received_at.isoformat(),
        "previous_upload_id": landed.previous_upload_id,
    }
    tmp = upload_dir / f".{META_FILE}.part"
    tmp.write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, upload_dir / META_FILE)
