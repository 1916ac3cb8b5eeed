"""Do-Not-Call lists and consent: load lists, audit removals, find fail-closed problems, scrub contacts.

Storage (sql/20_dnc.sql): numbers are BIGINT E.164 digits without '+', one row per (load, number) in
`dnc_numbers`; every load is a `dnc_loads` row with its stored file copy and sha256; removals are events in
`dnc_removals`. Nothing is ever deleted: a number is listed when its latest event still in force is an add.

Which events are in force: for `national`, a full snapshot replaces earlier events for the area codes it
covers (registry files may come one per area code), and later add/delete change lists apply on top. For
every other source a full file only adds numbers; numbers leave those lists through audited removals only,
so a partial internal export can never silently unlist anyone.

Fail closed: a file that cannot be read, has a non-blank line (or phone cell) that is not a number, or has
no valid number is refused whole (`DncFileRefused`, exit 2: the count and the first line numbers, never the
lines); a full snapshot that shrank beyond normal churn raises `DncUnavailable` unless the operator confirms
it (`allow_shrink`): national snapshots per area code (more than 2% fewer numbers in any area code the file
covers, the message names them), other lists as a whole (more than 10%). Nothing is written then, and the
previous snapshot stays current. `dnc_problems` lists what makes the lists untrustworthy for an audience build
(missing, empty, stale national list); messages carry no phone numbers, and parse errors are re-raised without
the offending line.

National registry files come in the registry's layouts: one 10-digit number per line, or `areacode,number`
lines (`415,5550134`), with or without a header line. A full snapshot records the area codes it covers
(`dnc_load_area_codes`): a campaign that requires the national list never calls a number whose area code no
loaded snapshot covers (`dnc:national_not_covered`), nor after its snapshot turned 31 days old
(`national_not_after`, used to cut the calling windows).

Consent: an explicit "no" (an opt-out) is always a reason (`consent_revoked`), whatever the campaign; a
campaign that requires consent calls only rows with yes, a real consent date not in the future, and a source.
That requirement is a criterion of the campaign's audience (`no_consent` at audience builds and in the live read
filter), not of the upload: an upload's unconsented contacts enter the contact book and the campaign (the import
still imports, the audience says why nobody is callable yet); DNC-listed numbers and opt-outs stay suppressed at
upload (`scrub(..., upload=True)`).

Other numbers of a contact (`other_phones_e164`: a mapping that names several phone columns) are scrubbed like
the phone, number by number: a listed one is taken off the contact's numbers (`other_phones_e164` keeps the
others, `other_phones_suppressed` lists it) and never reaches the book or an export
(`drop_listed_other_phones`; exports filter them live again). A listed other number does not suppress the
contact: it stays callable on its phone when the phone itself is not listed. A listed phone, or an opt-out,
suppresses the whole contact with every number it has. DNC matching is on the E.164 number alone: a listed
switchboard number covers every extension.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from callaro_pipeline.core.config import Campaign
from callaro_pipeline.core.errors import ConfigError, DncUnavailable
from callaro_pipeline.core.field_checks import consent_date_value
from callaro_pipeline.core.phones import normalize_phones
from callaro_pipeline.core.project_paths import check_name
from callaro_pipeline.storage.warehouse import home_of, stage

FIXED_SOURCES = ("internal", "national", "call_outcome")
FILE_KINDS = ("full", "add", "delete")
MAX_SHRINK = 0.10
# A national snapshot loses a few numbers per area code per month (disconnects, expiries): more than this share
# of any area code's numbers gone is a truncated file, not churn.
MAX_AREA_CODE_SHRINK = 0.02
NATIONAL_MAX_AGE_DAYS = 31
NANP_OFFSET = 10_000_000_000  # 10-digit NANP number -> E.164 digits with country code 1
_BARE_LINE = re.compile(r"^\s*(\+?1?[2-9]\d{2}[2-9]\d{6}|[2-9]\d{2}\s*,\s*[2-9]\d{6})\s*$")
_FIRST_BAD_LINES = 5
_PHONE_HEADERS = [re.compile(p, re.IGNORECASE) for p in (r"phone|mobile|cell|msisdn", r"tel", r"number")]  # by priority
_SNIFF_BYTES = 65536


class DncFileRefused(DncUnavailable):
    """A list file that cannot be read as a whole: refused, nothing loaded (usage-level problem: exit 2)."""

    exit_code = 2


@dataclass
class DncLoadResult:
    load_id: str
    source: str
    rows_loaded: int
    rows_rejected: int
    snapshot_date: date | None


def add_numbers(
    con: duckdb.DuckDBPyConnection,
    phones: list[str],
    *,
    source: str = "internal",
    reason: str | None = None,
    default_region: str = "US",
) -> DncLoadResult:
    """Add numbers typed in any format; invalid ones are counted as rejected. None valid: DncUnavailable."""
    check_source(source)
    numbers, rejected = _normalize_to_numbers(pl.Series("phone", phones, dtype=pl.Utf8), default_region)
    if numbers.is_empty():
        raise DncUnavailable(f"none of the {len(phones)} given numbers is a valid phone number: nothing added")
    with _atomic(con):
        load_id = _record_load(con, source=source, kind="manual", rows_loaded=numbers.height, rows_rejected=rejected)
        _insert_numbers(con, numbers, source=source, load_id=load_id, reason=reason)
    return DncLoadResult(load_id, source, numbers.height, rejected, None)


def import_dnc_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    source: str,
    snapshot_date: date | None = None,
    kind: str = "full",
    default_region: str = "US",
    allow_shrink: bool = False,
) -> DncLoadResult:
    """Load a DNC file: a CSV with a phone column, or registry layouts (bare 10-digit or `areacode,number`
    lines; full snapshot or change list). Any unreadable line refuses the whole file (DncFileRefused).

    The file's bytes are kept under `Paths.dnc_files` with their sha256. `snapshot_date` defaults to the
    file's modification date (when it was downloaded), never to today, so an old file does not look fresh.
    `allow_shrink`: the operator confirms that a full snapshot much smaller than the previous one is real.
    """
    check_source(source)
    if kind not in FILE_KINDS:
        raise ConfigError(f"DNC file kind must be one of {', '.join(FILE_KINDS)}, not {kind!r}")
    path = Path(path)
    stored, sha256 = _store_copy(path, home_of(con).dnc_files / _source_dir(source))
    snapshot = snapshot_date or datetime.fromtimestamp(path.stat().st_mtime, UTC).date()
    numbers, rejected = _read_numbers(stored, path.name, source=source, default_region=default_region)
    if numbers.is_empty():
        raise DncFileRefused(f"DNC file {path.name} has no valid phone number: not loaded")
    area_codes = _area_code_counts(numbers) if source == "national" else None
    with _atomic(con):
        if kind == "full" and not allow_shrink:
            _check_not_shrunk(con, source, numbers, path.name, area_codes)
        load_id = _record_load(
            con,
            source=source,
            kind=kind,
            rows_loaded=numbers.height,
            rows_rejected=rejected,
            file_name=path.name,
            stored_path=str(stored),
            sha256=sha256,
            snapshot_date=snapshot,
        )
        if kind == "delete":
            _insert_removals(con, numbers, source=source, load_id=load_id, reason=f"delete list {path.name}")
        else:
            _insert_file_numbers(con, numbers, load_id=load_id)
        if kind == "full" and source == "national" and area_codes is not None:
            _record_area_codes(con, area_codes, load_id)
    return DncLoadResult(load_id, source, numbers.height, rejected, snapshot)


def remove_numbers(con: duckdb.DuckDBPyConnection, phones: list[str], *, source: str, reason: str) -> int:
    """Unlist numbers from one source by recording removal events; returns how many were listed."""
    check_source(source)
    if not reason or not reason.strip():
        raise ConfigError("a DNC removal needs a reason (it is audited)")
    candidates, _ = _normalize_to_numbers(pl.Series("phone", phones, dtype=pl.Utf8), "US")
    with _atomic(con):
        listed = _listed_numbers(con, candidates, [source])
        if listed.is_empty():
            return 0
        numbers = listed.select("number")
        load_id = _record_load(con, source=source, kind="delete", rows_loaded=numbers.height, rows_rejected=0)
        _insert_removals(con, numbers, source=source, load_id=load_id, reason=reason.strip())
    return numbers.height


def dnc_problems(
    con: duckdb.DuckDBPyConnection,
    *,
    sources: list[str],
    require_national: bool,
    now: datetime,
    max_age_days: int = 31,
) -> list[str]:
    """Why the lists cannot be trusted for a build (empty result: they can).

    `sources` are the lists that apply (e.g. `campaign.dnc_sources`): the latest load of each must not be
    empty. A list never loaded is simply empty (a fresh installation has no internal numbers yet), except the
    national list when `require_national`: it must exist and be at most `max_age_days` old.
    """
    applicable = list(dict.fromkeys([*sources, *(["national"] if require_national else [])]))
    states = source_states(con, applicable)
    problems = []
    for source in applicable:
        state = states[source]
        if state is not None and state["latest_rows"] == 0:
            problems.append(f"the latest load of the {source} DNC list ({state['latest_load_id']}) has zero rows")
    national = states.get("national")
    if require_national and national is None:
        problems.append("the national DNC list has never been loaded")
    elif require_national:
        as_of = national["snapshot_date"]
        if as_of is None:
            problems.append("the national DNC list has no full snapshot (change lists alone are not a list)")
        else:
            age = (now.date() - date.fromisoformat(as_of)).days
            if age > max_age_days:
                problems.append(
                    f"the national DNC snapshot is {age} days old (as of {as_of}; limit {max_age_days} days)"
                )
    return problems


def scrub(
    con: duckdb.DuckDBPyConnection,
    contacts: pl.DataFrame,
    *,
    campaign: Campaign,
    now: datetime | None = None,
    check_coverage: bool = False,
    upload: bool = False,
) -> pl.DataFrame:
    """The same rows plus `reasons` (List[Utf8]; empty = callable) and `dnc_snapshot` (JSON of loads checked);
    with an `other_phones_e164` column, that column keeps only the other numbers not listed and
    `other_phones_suppressed` (List[Utf8]) holds the listed ones (they never make the row's reasons).

    Reasons: `dnc:<source>` for every applicable list the number is on; with `check_coverage` (audience builds:
    an upload's contacts still enter the book before the national list is loaded), `dnc:national_not_covered`
    when the campaign requires the national list and no loaded snapshot covers the number's area code (a number
    outside the North American plan has none); `consent_revoked` for an explicit no (an opt-out), whatever the
    campaign; `no_consent` when the campaign requires consent and the row lacks consent == yes with a real
    consent date (not after `now`, default today) and a source — except with `upload` (an upload's scrub: the
    consent a campaign requires is decided by its audience, so the contact still enters the book).
    """
    sources = campaign.dnc_sources
    numbers = contacts.select(_e164_to_number(pl.col("phone_e164")).alias("number"))
    listed = _listed_numbers(con, numbers.unique().drop_nulls(), sources)
    source_order = {source: i for i, source in enumerate(sources)}
    dnc_reasons = (
        listed.with_columns(pl.col("source").replace_strict(source_order, return_dtype=pl.Int32).alias("order"))
        .sort("number", "order")
        .group_by("number", maintain_order=True)
        .agg(("dnc:" + pl.col("source")).alias("dnc_reasons"))
    )
    has_consent = "consent" in contacts.columns
    consent = pl.col("consent").cast(pl.Utf8).str.strip_chars().str.to_lowercase() if has_consent else pl.lit(None)
    revoked = (consent == "no").fill_null(False) if has_consent else pl.lit(False)
    consent_missing = pl.lit(False)
    if campaign.require_consent and not upload:
        today = (now or datetime.now(UTC)).date()
        consent_date = consent_date_value(pl.col("consent_date").cast(pl.Utf8))
        consent_missing = ~revoked & ~(
            (consent == "yes").fill_null(False) & (consent_date <= today).fill_null(False) & _present("consent_source")
        )
    not_covered = pl.lit(False)
    if campaign.require_national_dnc and check_coverage:
        covered = pl.Series("area_code", national_area_codes(con), dtype=pl.Int64)
        area_code = (pl.col("number") // 10_000_000) % 1000
        is_nanp = pl.col("number").is_between(NANP_OFFSET, 2 * NANP_OFFSET - 1)
        not_covered = ~(is_nanp & area_code.is_in(covered.implode())).fill_null(False)
    snapshot_json = json.dumps(source_states(con, sources), sort_keys=True)
    # joined on the number column alone, then added: a join of the whole frame would copy every column
    listed_reasons = numbers.join(dnc_reasons, on="number", how="left", maintain_order="left")
    coverage = listed_reasons.with_columns(not_covered.alias("_not_covered"))["_not_covered"]
    empty = pl.lit([], dtype=pl.List(pl.Utf8))

    def reason(condition: pl.Expr, name: str) -> pl.Expr:
        return pl.when(condition).then(pl.lit([name], dtype=pl.List(pl.Utf8))).otherwise(empty)

    scrubbed = (
        contacts.with_columns(listed_reasons["dnc_reasons"], coverage)
        .with_columns(
            pl.concat_list(
                pl.col("dnc_reasons").fill_null(empty),
                reason(pl.col("_not_covered"), "dnc:national_not_covered"),
                reason(revoked, "consent_revoked"),
                reason(consent_missing, "no_consent"),
            ).alias("reasons"),
            pl.lit(snapshot_json, dtype=pl.Utf8).alias("dnc_snapshot"),
        )
        .drop("dnc_reasons", "_not_covered")
    )
    if OTHER_PHONES in scrubbed.columns:
        scrubbed = drop_listed_other_phones(con, scrubbed, sources)
    return scrubbed


OTHER_PHONES = "other_phones_e164"


def drop_listed_other_phones(
    con: duckdb.DuckDBPyConnection, contacts: pl.DataFrame, sources: list[str] | None
) -> pl.DataFrame:
    """The rows with `other_phones_e164` keeping only the numbers not currently listed in `sources` (None: in
    any list at all), in their order, and `other_phones_suppressed` holding the listed ones (empty lists are
    null). Rows without other numbers are untouched; a frame without the column is returned as it is."""
    if OTHER_PHONES not in contacts.columns:
        return contacts
    if sources is None:
        sources = [source for (source,) in con.execute("SELECT DISTINCT source FROM dnc_loads").fetchall()]
    others = contacts.get_column(OTHER_PHONES).cast(pl.List(pl.Utf8))
    exploded = (
        pl.DataFrame({"_row": pl.int_range(0, contacts.height, dtype=pl.UInt32, eager=True), "phone": others})
        .explode("phone")
        .drop_nulls("phone")
        .with_columns(_e164_to_number(pl.col("phone")).alias("number"))
    )
    if exploded.is_empty():
        return contacts.with_columns(pl.lit(None, pl.List(pl.Utf8)).alias("other_phones_suppressed"))
    listed = _listed_numbers(con, exploded.select("number").unique().drop_nulls(), sources).get_column("number")
    blocked = exploded.get_column("number").is_in(listed.implode()).fill_null(False)
    # an unreadable other number cannot be checked against the lists: it is not offered either
    blocked = blocked | exploded.get_column("number").is_null()
    split = exploded.with_columns(blocked.alias("_blocked"))
    kept = split.filter(~pl.col("_blocked")).group_by("_row", maintain_order=True).agg(pl.col("phone").alias("_kept"))
    gone = split.filter(pl.col("_blocked")).group_by("_row", maintain_order=True).agg(pl.col("phone").alias("_gone"))
    rows = pl.DataFrame({"_row": pl.int_range(0, contacts.height, dtype=pl.UInt32, eager=True)})
    joined = rows.join(kept, on="_row", how="left", maintain_order="left").join(
        gone, on="_row", how="left", maintain_order="left"
    )
    return contacts.with_columns(
        joined.get_column("_kept").cast(pl.List(pl.Utf8)).alias(OTHER_PHONES),
        joined.get_column("_gone").cast(pl.List(pl.Utf8)).alias("other_phones_suppressed"),
    )


def national_area_codes(con: duckdb.DuckDBPyConnection) -> list[int]:
    """The area codes some loaded national full snapshot covers."""
    return [code for (code,) in con.execute("SELECT area_code FROM dnc_national_base ORDER BY 1").fetchall()]


def national_not_after(con: duckdb.DuckDBPyConnection, max_age_days: int = NATIONAL_MAX_AGE_DAYS) -> datetime | None:
    """The instant (UTC, aware) from which the current national list is too old to call against: its as-of date
    (the stalest area code's snapshot, midnight UTC) plus `max_age_days`. None when there is no snapshot."""
    as_of = _national_as_of(con)
    if as_of is None:
        return None
    return datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC) + timedelta(days=max_age_days)


def source_states(con: duckdb.DuckDBPyConnection, sources: list[str]) -> dict[str, dict | None]:
    """Per source, the loads a check is made against: the latest load (which, with the append-only history,
    pins the list's state) and the date the list is current as of. None for a source never loaded."""
    rows = con.execute(
        """
        SELECT source, arg_max(load_id, load_seq), arg_max(rows_loaded, load_seq), max(loaded_at),
               count(*), max(snapshot_date)
        FROM dnc_loads WHERE source IN (SELECT unnest(?::VARCHAR[])) GROUP BY source
        """,
        [sources],
    ).fetchall()
    states: dict[str, dict | None] = dict.fromkeys(sources)
    for source, load_id, latest_rows, loaded_at, loads, latest_snapshot in rows:
        as_of = _national_as_of(con) if source == "national" else latest_snapshot
        states[source] = {
            "latest_load_id": load_id,
            "latest_rows": latest_rows,
            "latest_loaded_at": loaded_at.isoformat(),
            "loads": loads,
            "snapshot_date": as_of.isoformat() if as_of else None,
        }
    return states


def check_source(source: str) -> str:
    if source in FIXED_SOURCES:
        return source
    if source.startswith("campaign:"):
        check_name(source.removeprefix("campaign:"), "campaign name")
        return source
    raise ConfigError(f"unknown DNC source {source!r}: use {', '.join(FIXED_SOURCES)} or campaign:<name>")


def _national_as_of(con: duckdb.DuckDBPyConnection) -> date | None:
    """The national list is as fresh as its stalest area code: each area code's full snapshot date, or a
    later add change list's date (a delete list alone does not bring new registrations)."""
    row = con.execute(
        """
        SELECT min(greatest(full_load.snapshot_date, coalesce(
            (SELECT max(c.snapshot_date) FROM dnc_loads c
             WHERE c.source = 'national' AND c.kind = 'add' AND c.load_seq > b.base_seq),
            full_load.snapshot_date)))
        FROM dnc_national_base b JOIN dnc_loads full_load ON full_load.load_seq = b.base_seq
        """
    ).fetchone()
    return row[0] if row else None


def _listed_numbers(con: duckdb.DuckDBPyConnection, numbers: pl.DataFrame, sources: list[str]) -> pl.DataFrame:
    """(number, source) for the given numbers currently listed in the given sources.

    Same rule as the `dnc_active` view, but starting from the (few) numbers asked about so a 100M-row list
    is probed by a hash join instead of being aggregated whole.
    """
    stage(con, "dnc_probe", numbers.select(pl.col("number").cast(pl.Int64)))
    try:
        return con.execute(
            """
            WITH probe AS (SELECT DISTINCT number FROM dnc_probe WHERE number IS NOT NULL),
            wanted AS (SELECT unnest(?::VARCHAR[]) AS source),
            events AS (
                SELECT n.number, n.source, n.load_id, 'add' AS op
                FROM dnc_numbers n JOIN probe USING (number) WHERE n.source IN (SELECT source FROM wanted)
                UNION ALL
                SELECT f.number, fl.source, fl.load_id, 'add' AS op
                FROM dnc_file_numbers f JOIN probe USING (number) JOIN dnc_loads fl USING (load_seq)
                WHERE fl.source IN (SELECT source FROM wanted)
                UNION ALL
                SELECT r.number, r.source, r.load_id, 'remove' AS op
                FROM dnc_removals r JOIN probe USING (number) WHERE r.source IN (SELECT source FROM wanted)
            )
            SELECT e.number, e.source
            FROM events e
            JOIN dnc_loads l USING (load_id)
            LEFT JOIN dnc_national_base b ON e.source = 'national' AND b.area_code = (e.number // 10000000) % 1000
            WHERE l.load_seq >= coalesce(b.base_seq, 0)
            GROUP BY e.number, e.source
            HAVING arg_max(e.op, l.load_seq) = 'add'
            """,
            [sources],
        ).pl()
    finally:
        con.unregister("dnc_probe")


def _check_not_shrunk(
    con: duckdb.DuckDBPyConnection,
    source: str,
    numbers: pl.DataFrame,
    file_name: str,
    area_codes: pl.DataFrame | None = None,
) -> None:
    """A full snapshot much smaller than the one it follows is more likely truncated than real: refuse it.

    National snapshots are compared area code by area code with the snapshot each area code currently rests
    on (a file cut at 96% of its lines loses the tail of one area code: a sum over area codes would hide it);
    area codes the file does not hold are not covered by it and keep their previous snapshot."""
    if source == "national":
        stage(con, "dnc_incoming_area_codes", _area_code_counts(numbers) if area_codes is None else area_codes)
        try:
            shrunk = con.execute(
                """
                SELECT i.area_code, a.rows_loaded AS previous, i.rows_loaded AS incoming
                FROM dnc_incoming_area_codes i
                JOIN dnc_national_base b USING (area_code)
                JOIN dnc_loads l ON l.load_seq = b.base_seq
                JOIN dnc_load_area_codes a ON a.load_id = l.load_id AND a.area_code = i.area_code
                WHERE i.rows_loaded < (1 - ?) * a.rows_loaded
                ORDER BY (a.rows_loaded - i.rows_loaded) / a.rows_loaded DESC, i.area_code
                """,
                [MAX_AREA_CODE_SHRINK],
            ).fetchall()
        finally:
            con.unregister("dnc_incoming_area_codes")
        if shrunk:
            named = ", ".join(
                f"{code:03d} ({previous} -> {incoming}, -{(previous - incoming) / previous:.1%})"
                for code, previous, incoming in shrunk[:20]
            )
            more = f" and {len(shrunk) - 20} more" if len(shrunk) > 20 else ""
            raise DncUnavailable(
                f"the national DNC list shrank unexpectedly in {len(shrunk)} area code(s): {named}{more} "
                f"(more than {MAX_AREA_CODE_SHRINK:.0%} fewer numbers than the current snapshot); {file_name} not "
                "loaded, the previous snapshot stays current (if the registry really dropped them: --allow-shrink)"
            )
        return
    previous = con.execute(
        "SELECT arg_max(rows_loaded, load_seq) FROM dnc_loads WHERE source = ? AND kind = 'full'", [source]
    ).fetchone()[0]
    if previous and numbers.height < (1 - MAX_SHRINK) * previous:
        raise DncUnavailable(
            f"the {source} DNC list shrank unexpectedly: {file_name} has {numbers.height} numbers, the previous "
            f"full snapshot had {previous} (more than {MAX_SHRINK:.0%} fewer); not loaded (if real: --allow-shrink)"
        )


def _area_code_counts(numbers: pl.DataFrame) -> pl.DataFrame:
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


def _record_area_codes(con: duckdb.DuckDBPyConnection, area_codes: pl.DataFrame, load_id: str) -> None:
    stage(con, "dnc_area_codes_new", area_codes.with_columns(pl.lit(load_id).alias("load_id")))
    con.execute("INSERT INTO dnc_load_area_codes BY NAME SELECT * FROM dnc_area_codes_new")
    con.unregister("dnc_area_codes_new")


def _record_load(
    con: duckdb.DuckDBPyConnection,
    *,
    source: str,
    kind: str,
    rows_loaded: int,
    rows_rejected: int,
    file_name: str | None = None,
    stored_path: str | None = None,
    sha256: str | None = None,
    snapshot_date: date | None = None,
) -> str:
    loaded_at = _utc_now()
    load_id = f"dnc-{loaded_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    con.execute(
        """
        INSERT INTO dnc_loads (load_id, load_seq, source, kind, file_name, stored_path, sha256, snapshot_date,
                               rows_loaded, rows_rejected, loaded_at)
        SELECT ?, coalesce(max(load_seq), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM dnc_loads
        """,
        [load_id, source, kind, file_name, stored_path, sha256, snapshot_date, rows_loaded, rows_rejected, loaded_at],
    )
    return load_id


def _insert_numbers(
    con: duckdb.DuckDBPyConnection, numbers: pl.DataFrame, *, source: str, load_id: str, reason: str | None
) -> None:
    stage(con, "dnc_numbers_new", numbers.select("number"))
    con.execute(
        """
        INSERT INTO dnc_numbers (number, source, load_id, reason, added_at)
        SELECT number, ?, ?, ?, ? FROM dnc_numbers_new
        """,
        [source, load_id, reason, _utc_now()],
    )
    con.unregister("dnc_numbers_new")


def _insert_file_numbers(con: duckdb.DuckDBPyConnection, numbers: pl.DataFrame, *, load_id: str) -> None:
    """A file's numbers: the integers only, tied to their load (see dnc_file_numbers in sql/20_dnc.sql)."""
    (load_seq,) = con.execute("SELECT load_seq FROM dnc_loads WHERE load_id = ?", [load_id]).fetchone()
    stage(con, "dnc_file_numbers_new", numbers.select("number"))
    con.execute("INSERT INTO dnc_file_numbers SELECT ?, number FROM dnc_file_numbers_new", [load_seq])
    con.unregister("dnc_file_numbers_new")


def _insert_removals(
    con: duckdb.DuckDBPyConnection, numbers: pl.DataFrame, *, source: str, load_id: str, reason: str
) -> None:
    stage(con, "dnc_removals_new", numbers.select("number"))
    con.execute(
        """
        INSERT INTO dnc_removals (number, source, load_id, reason, removed_at)
        SELECT number, ?, ?, ?, ? FROM dnc_removals_new
        """,
        [source, load_id, reason, _utc_now()],
    )
    con.unregister("dnc_removals_new")


def _read_numbers(path: Path, name: str, *, source: str, default_region: str) -> tuple[pl.DataFrame, int]:
    """Distinct valid numbers (column `number`, Int64) and the count of rejected non-blank lines/cells."""
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if _is_utf16(head):
        return _read_csv_numbers(path, name, default_region)
    if source == "national" or _looks_like_bare_lines(head):
        return _read_bare_lines(path, name)
    return _read_csv_numbers(path, name, default_region)


def _read_bare_lines(path: Path, name: str) -> tuple[pl.DataFrame, int]:
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
    numbers = normalized.select(_e164_to_number(pl.col("phone_e164")).alias("number"))
    non_blank = (cells.str.strip_chars().str.len_chars() > 0).fill_null(False)
    offset = 2 if has_header else 1
    bad = pl.DataFrame({"line_number": pl.int_range(offset, offset + table.height, eager=True), "bad": non_blank})
    bad = bad.filter(pl.col("bad") & numbers.get_column("number").is_null())
    _refuse_bad_lines(name, bad.get_column("line_number"))
    return numbers.drop_nulls().unique(), 0


def _normalize_to_numbers(raw: pl.Series, default_region: str) -> tuple[pl.DataFrame, int]:
    normalized = normalize_phones(raw, default_region=default_region)
    numbers = normalized.select(_e164_to_number(pl.col("phone_e164")).alias("number"))
    rejected = numbers["number"].null_count()
    return numbers.drop_nulls().unique(), rejected


def _e164_to_number(phone: pl.Expr) -> pl.Expr:
    return phone.cast(pl.Utf8).str.strip_prefix("+").cast(pl.Int64, strict=False)


def _present(column: str) -> pl.Expr:
    return (pl.col(column).cast(pl.Utf8).str.strip_chars().str.len_chars() > 0).fill_null(False)


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


def _store_copy(path: Path, directory: Path) -> tuple[Path, str]:
    """Keep the file's bytes (content-addressed, so a re-download of the same file is stored once).

    Copied by the kernel, then hashed from the copy: half the time of hashing while copying in Python chunks
    on a 1 GB national file."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".incoming-{uuid.uuid4().hex}"
    try:
        shutil.copyfile(path, tmp)
        with tmp.open("rb") as copy:
            sha256 = hashlib.file_digest(copy, "sha256").hexdigest()
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DncUnavailable(f"DNC file {path.name} cannot be read ({exc.strerror or type(exc).__name__})") from None
    stored = directory / f"{sha256[:16]}-{_safe_file_name(path.name)}"
    if stored.exists():
        tmp.unlink()
    else:
        os.replace(tmp, stored)
    return stored, sha256


def _safe_file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[-100:] or "dnc"


def _source_dir(source: str) -> str:
    return source.replace(":", "_")


@contextlib.contextmanager
def _atomic(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One transaction: ours, or the caller's if one is open (DuckDB has no nested transactions, and a
    BEGIN inside one aborts it; inside a transaction current_transaction_id() is stable across statements)."""
    in_transaction = (
        con.execute("SELECT current_transaction_id()").fetchone()[0]
        == con.execute("SELECT current_transaction_id()").fetchone()[0]
    )
    if in_transaction:
        yield
        return
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
