"""Properties of the pure flow (reader -> mapping -> validation -> duplicates) and of the normalizers.

Every source row ends up in exactly one place: `rows_read = imported + rejected + duplicates + suppressed`
(suppressed is 0 here: the DNC scrub needs a warehouse). Arbitrary bytes never crash a normalizer.
"""

from __future__ import annotations

import csv
import io

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callaro_pipeline.core.campaign_settings import CustomField
from callaro_pipeline.core.config import Campaign
from callaro_pipeline.core.errors import NothingToImport
from callaro_pipeline.core.flow import check_upload, map_upload
from callaro_pipeline.core.phones import normalize_phones
from callaro_pipeline.core.reading import read_table
from callaro_pipeline.core.typed_timezones import parse_timezone_text
from callaro_pipeline.core.uploads import UploadOptions

REGISTRY = {"seats": CustomField("seats", "integer", "sales-ops", "licensed seats")}
HEADER = ["Phone Number", "First Name", "E-mail", "Time Zone", "Customer ID", "Seats"]
# a few real numbers in several spellings, so that duplicates (same E.164) happen often
PHONES = [
    "(415) 555-0134",
    "415.555.0134",
    "+1 415 555 0134",
    "(212) 555-0199",
    "212-555-0199 x12",
    "+44 20 7946 0958",
    "(646) 201-7789",
    "4155550134.0",
    "4.15556E+09",
    "555-0100",
    "",
]
EXISTING = pl.DataFrame(
    {"phone_e164": ["+16462017789"], "external_id": [None], "upload_id": ["earlier"]},
    schema={"phone_e164": pl.Utf8, "external_id": pl.Utf8, "upload_id": pl.Utf8},
)

# printable junk: control characters would make the reader refuse the whole file as binary (tested elsewhere)
junk = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=15)
phone = st.one_of(st.sampled_from(PHONES), junk)
row = st.tuples(
    phone,
    st.one_of(st.sampled_from(["Ann", "Bo", ""]), junk),
    st.sampled_from(["ann@example.com", "not-an-address", "", "b@example.org"]),
    st.sampled_from(["", "EST", "Pacific", "Mars/Base", "UTC-05:00"]),
    st.sampled_from(["", "", "C-1", "C-2"]),
    st.sampled_from(["", "3", "three", "4.0"]),
)
# a record the reader cannot split into the header's columns
ragged = st.lists(st.sampled_from(["x", "(415) 555-0134", ""]), min_size=1, max_size=4).filter(
    lambda cells: any(cells) and len(cells) != len(HEADER)
)


@st.composite
def upload_records(draw: st.DrawFn) -> list[list[str]]:
    """Rows of the header's width, with a minority of ragged records among them (a majority would make the
    reader take their width for the table's and refuse the file as a whole)."""
    records = draw(st.lists(row.map(list), min_size=1, max_size=16))
    for record in draw(st.lists(ragged, max_size=(len(records) - 1) // 2)):
        records.insert(draw(st.integers(0, len(records))), record)
    return records


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=upload_records(),
    policy=st.sampled_from(["suppress", "merge", "split"]),
    with_existing=st.booleans(),
)
def test_every_row_read_is_imported_rejected_or_a_duplicate(
    records: list[list[str]], policy: str, with_existing: bool
) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([HEADER, *records])
    try:
        table = read_table(buffer.getvalue().encode("utf-8"), "upload.csv")
    except NothingToImport:
        return
    campaign = Campaign(name="prop", duplicates=policy)
    options = UploadOptions()
    mapped = map_upload(
        table.rows,
        table.columns,
        campaign=campaign,
        options=options,
        registry=REGISTRY,
        remembered_mapping=None,
        previous_columns=None,
    )
    checked = check_upload(
        mapped.contacts,
        mapped.mapping,
        campaign=campaign,
        options=options,
        registry=REGISTRY,
        malformed=table.malformed,
        existing=EXISTING if with_existing else None,
    )
    counts = checked.counts()
    rows_read = table.rows.height + table.malformed.height  # what raw_upload records
    imported, suppressed = checked.kept.height, 0
    assert rows_read == imported + counts["rejected"] + counts["duplicates"] + suppressed
    # and row by row: a kept row was never rejected, every rejected row is a row that was read
    kept_rows = set(checked.kept.get_column("row_number"))
    rejected_rows = set(checked.validation.problems.get_column("row_number"))
    read_rows = set(table.rows.get_column("row_number")) | set(table.malformed.get_column("row_number"))
    assert not kept_rows & rejected_rows
    assert kept_rows | rejected_rows <= read_rows


any_text = st.one_of(
    st.binary(max_size=40).map(lambda raw: raw.decode("cp1252", errors="replace")),
    st.binary(max_size=40).map(lambda raw: raw.decode("utf-8", errors="replace")),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.none(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(any_text, max_size=12),
    region=st.sampled_from(["US", "CA", "GB", "DE", "us", "ZZ", "", "001"]),
)
def test_phone_normalizer_takes_any_text(values: list[str | None], region: str) -> None:
    out = normalize_phones(pl.Series("phone", values, dtype=pl.Utf8), region)
    assert out.height == len(values)
    valid = out.filter(pl.col("phone_e164").is_not_null()).get_column("phone_e164")
    assert valid.str.contains(r"^\+[1-9]\d{6,14}$").all()


north_american_text = st.from_regex(
    r"\A\+?1?[ (]?[0-9]{3}[) .-]{0,2}[0-9]{3}[ .-]?[0-9]{4}( ?(x|ext\.?) ?[0-9]{1,5})?\Z"
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(st.one_of(north_american_text, any_text), max_size=12),
    region=st.sampled_from(["US", "CA", "JM", "GB"]),
)
def test_a_few_numbers_get_the_same_answers_as_many(values: list[str | None], region: str) -> None:
    """A small upload's North American numbers go to phonenumbers, a large one's are answered from its metadata
    (phones.METADATA_FROM_DISTINCT): the answers are the same."""
    series = pl.Series("phone", values, dtype=pl.Utf8)
    assert normalize_phones(series, region).equals(normalize_phones(series, region, metadata_from=0))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(any_text, max_size=12))
def test_time_zone_parser_takes_any_text(values: list[str | None]) -> None:
    out = parse_timezone_text(pl.Series("timezone", values, dtype=pl.Utf8))
    assert out.height == len(values)
    # an error never comes with a zone, and an error message never repeats the text it could not read
    for candidates, error, message in out.select("tz_candidates", "tz_error", "tz_error_message").iter_rows():
        assert not (error and candidates)
        assert message is None or all(len(v or "") < 4 or v not in message for v in values)
