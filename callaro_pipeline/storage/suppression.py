"""Do-Not-Call lists and consent: what the lists say, fail-closed problems, scrub contacts. (Loading the lists
and audited removals: `callaro_pipeline.storage.dnc_loads`; reading list files: `callaro_pipeline.core.dnc_files`.)

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

import json
from datetime import UTC, date, datetime, timedelta

import duckdb
import polars as pl

from callaro_pipeline.core.config import Campaign
from callaro_pipeline.core.dnc_files import NANP_OFFSET, e164_to_number
from callaro_pipeline.core.field_checks import consent_date_value
from callaro_pipeline.core.suppression import list_problems
from callaro_pipeline.storage.warehouse import stage

NATIONAL_MAX_AGE_DAYS = 31


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
    return list_problems(
        source_states(con, applicable), require_national=require_national, now=now, max_age_days=max_age_days
    )


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
    numbers = contacts.select(e164_to_number(pl.col("phone_e164")).alias("number"))
    listed = listed_numbers(con, numbers.unique().drop_nulls(), sources)
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
        .with_columns(e164_to_number(pl.col("phone")).alias("number"))
    )
    if exploded.is_empty():
        return contacts.with_columns(pl.lit(None, pl.List(pl.Utf8)).alias("other_phones_suppressed"))
    listed = listed_numbers(con, exploded.select("number").unique().drop_nulls(), sources).get_column("number")
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


def listed_numbers(con: duckdb.DuckDBPyConnection, numbers: pl.DataFrame, sources: list[str]) -> pl.DataFrame:
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


def _present(column: str) -> pl.Expr:
    return (pl.col(column).cast(pl.Utf8).str.strip_chars().str.len_chars() > 0).fill_null(False)
