"""Lake maintenance: merge small files, expire snapshots older than the retention, delete files no snapshot uses.

The retention is the compliance owner's (`CALLARO_CONFIG/lake.yaml`, `snapshot_retention_days`): time travel
reaches back that far and no further. The default keeps four years of snapshots, the federal limitation
period for TCPA claims (28 U.S.C. 1658(a)) — a judgement call for counsel, who may shorten or lengthen it.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.storage.lake import LAKE

DEFAULT_RETENTION_DAYS = 4 * 365 + 1
# Files a merge or an expiry replaced are deleted only after this long, so a reader that started before the
# maintenance (an analyst's long query) still finds them.
FILE_GRACE_HOURS = 24


class LakeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    snapshot_retention_days: int = Field(default=DEFAULT_RETENTION_DAYS, ge=1, strict=True)


def lake_settings(config_dir: Path) -> LakeSettings:
    path = config_dir / "lake.yaml"
    if not path.is_file():
        return LakeSettings()
    try:
        return LakeSettings.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        first = str(exc).splitlines()[1:3] if isinstance(exc, ValidationError) else [str(exc).splitlines()[0]]
        raise ConfigError(f"{path}: {' '.join(line.strip() for line in first)}") from None


def maintain(con: duckdb.DuckDBPyConnection, *, retention_days: int, grace_hours: int = FILE_GRACE_HOURS) -> dict:
    """Run the maintenance on the lake session `con`; returns what it did (counts only)."""
    snapshots_before = _snapshots(con)
    merged = con.execute(f"CALL ducklake_merge_adjacent_files('{LAKE}')").fetchall()
    expired = con.execute(
        f"CALL ducklake_expire_snapshots('{LAKE}', older_than => now() - INTERVAL ({int(retention_days)}) DAY)"
    ).fetchall()
    deleted = con.execute(
        f"CALL ducklake_cleanup_old_files('{LAKE}', older_than => now() - INTERVAL ({int(grace_hours)}) HOUR)"
    ).fetchall()
    return {
        "merged_files": sum(int(files_processed) for _schema, _table, files_processed, _created in merged),
        "expired_snapshots": len(expired),
        "deleted_files": len(deleted),
        "snapshots_before": snapshots_before,
        "snapshots_after": _snapshots(con),
        "retention_days": retention_days,
    }


def _snapshots(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute(f"SELECT count(*) FROM {LAKE}.snapshots()").fetchone()[0])  # noqa: S608 - constant
