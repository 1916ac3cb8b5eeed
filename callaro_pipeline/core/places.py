"""Places: state / province codes from any common spelling, from postal codes, and the states whose rules apply.

Pure polars (no Dagster, no DuckDB). Every function works on the distinct values of its input and joins the
answer back, so the cost follows the number of distinct values, not the number of rows. The lookup tables are
data files under `reference/`, each documented at its top and in `reference/README.md`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import polars as pl

from callaro_pipeline.core.lists import distinct_sorted

REFERENCE_DIR = Path(__file__).parent / "reference"
US_COUNTRY_NAMES = ["US", "USA", "U.S.", "U.S.A.", "UNITED STATES", "UNITED STATES OF AMERICA", "AMERICA"]
CA_COUNTRY_NAMES = ["CA", "CAN", "CANADA"]
US_PHONE_REGIONS = ["US", "PR", "VI", "GU", "MP", "AS"]
# Canada Post: X0A, X0B and X0C are Nunavut; the other X FSAs are the Northwest Territories.
_NUNAVUT_FSAS = ["X0A", "X0B", "X0C"]
# 5 digits or ZIP+4 ("12345", "12345-6789", "123456789"); a 4-digit "ZIP" is never guessed.
ZIP_PATTERN = r"^(\d{5})(?:-?\d{4})?$"
FSA_PATTERN = r"^([A-Z]\d[A-Z]) ?\d[A-Z]\d$"


def read_reference(name: str) -> pl.DataFrame:
    return pl.read_csv(REFERENCE_DIR / name, comment_prefix="#", infer_schema=False)


def country_group(country: pl.Expr, phone_region: pl.Expr | None = None) -> pl.Expr:
    """ "US", "CA", "other" (a country that disables US/Canadian state and postal rules) or null (unknown).

    Without a country, the phone number's region (when given) stands in, so that e.g. an Australian number's
    "WA" is not read as Washington.
    """
    upper = country.cast(pl.Utf8).str.strip_chars().str.to_uppercase()
    group = (
        pl.when(upper.is_in(US_COUNTRY_NAMES))
        .then(pl.lit("US"))
        .when(upper.is_in(CA_COUNTRY_NAMES))
        .then(pl.lit("CA"))
        .when(upper.is_not_null() & (upper != ""))
        .then(pl.lit("other"))
    )
    if phone_region is None:
        return group.otherwise(None)
    return (
        group.when(phone_region.is_in(US_PHONE_REGIONS))
        .then(pl.lit("US"))
        .when(phone_region == "CA")
        .then(pl.lit("CA"))
        .when(phone_region.is_not_null())
        .then(pl.lit("other"))
    )


def _state_key(text: pl.Expr) -> pl.Expr:
    """Accents dropped, upper case, dots removed, separators as single spaces: "N.Y." -> "NY", "Québec" -> "QUEBEC"."""
    return (
        text.str.normalize("NFKD")
        .str.replace_all(r"\p{M}", "")
        .str.to_uppercase()
        .str.replace_all(r"\.", "")
        .str.replace_all(r"[\s,_\-/]+", " ")
        .str.replace(r"^(?:STATE OF|PROVINCE OF|COMMONWEALTH OF|TERRITORY OF) ", "")
        .str.strip_chars()
    )


@cache
def state_table() -> pl.DataFrame:
    """key -> state code and its country ("US"/"CA"): codes, English names and the aliases file."""
    states = read_reference("state_timezones.csv")
    codes = states.select(key="state", state_code="state")
    names = states.select(key="name", state_code="state")
    aliases = read_reference("state_aliases.csv").select(key="alias", state_code="state")
    keys = pl.concat([codes, names, aliases]).with_columns(key=_state_key(pl.col("key")))
    return (
        keys.unique(subset="key", keep="first", maintain_order=True)
        .join(states.select(state_code="state", state_country="country"), on="state_code", how="left")
        .select("key", "state_code", "state_country")
    )


def _restrict(code: pl.Expr, code_country: pl.Expr, group: pl.Expr) -> pl.Expr:
    """Keep a code unless the country rules it out: another country than the US or Canada gives none (an
    Australian "WA" is not Washington); the US and Canada allow each other's codes, which never collide (a
    Canadian row with a US state keeps that state's rules: the stricter reading)."""
    return pl.when(group.is_null() | group.is_in(["US", "CA"])).then(code)


def _country_series(country: pl.Series | None, length: int) -> pl.Series:
    if country is None:
        return pl.Series("country", [None] * length, dtype=pl.Utf8)
    return country.cast(pl.Utf8).rename("country")


def normalize_state(state: pl.Series, country: pl.Series | None = None) -> pl.Series:
    """2-letter US state / DC / territory / Canadian province or territory code, or null, from any common spelling.

    "FL", "Fla.", "Florida", "N.Y.", "Calif", "Mass.", "Québec", "PQ", "B.C." are all read. A country other
    than the US or Canada gives null (the US and Canada allow each other's codes: the stricter reading).
    """
    frame = pl.DataFrame([state.cast(pl.Utf8).rename("state"), _country_series(country, len(state))])
    distinct = frame.unique().with_columns(key=_state_key(pl.col("state")), group=country_group(pl.col("country")))
    answers = distinct.join(state_table(), on="key", how="left").select(
        "state", "country", code=_restrict(pl.col("state_code"), pl.col("state_country"), pl.col("group"))
    )
    joined = frame.join(answers, on=["state", "country"], how="left", nulls_equal=True, maintain_order="left")
    return joined["code"].rename(state.name or "state")


@cache
def _zip_state_tables() -> tuple[pl.DataFrame, pl.DataFrame]:
    """(zip3 -> state, zip5 exception -> state); exceptions win, an empty exception means no state."""
    rows = read_reference("zip3_states.csv")
    width = pl.col("zip_from").str.len_chars()
    ranges = rows.select(
        width=width,
        zip=pl.int_ranges(pl.col("zip_from").cast(pl.Int32), pl.col("zip_to").cast(pl.Int32) + 1),
        zip_state=pl.col("state").replace("", None),
    ).explode("zip")
    zip3 = ranges.filter(pl.col("width") == 3).select(zip3=pl.col("zip"), zip3_state="zip_state")
    zip5 = ranges.filter(pl.col("width") == 5).select(zip5=pl.col("zip"), zip5_state="zip_state", zip5_known=True)
    return zip3, zip5


@cache
def _fsa_table() -> pl.DataFrame:
    letters = read_reference("ca_postal_timezones.csv").select(fsa_letter="letter", fsa_state="state")
    return letters


def _postal_state_distinct(distinct: pl.DataFrame) -> pl.DataFrame:
    """Columns postal_code, country -> code."""
    zip3_table, zip5_table = _zip_state_tables()
    code = pl.col("postal_code").str.strip_chars().str.to_uppercase()
    group = country_group(pl.col("country"))
    zip5 = code.str.extract(ZIP_PATTERN, 1)
    fsa = code.str.extract(FSA_PATTERN, 1)
    # the formats never collide, so a US or Canadian row reads either (the stricter reading)
    us_ok = ca_ok = group.is_null() | group.is_in(["US", "CA"])
    return (
        distinct.with_columns(
            zip5=pl.when(us_ok).then(zip5.cast(pl.Int32)),
            fsa=pl.when(ca_ok).then(fsa),
        )
        .with_columns(zip3=pl.col("zip5") // 100, fsa_letter=pl.col("fsa").str.slice(0, 1))
        .join(zip3_table, on="zip3", how="left")
        .join(zip5_table, on="zip5", how="left")
        .join(_fsa_table(), on="fsa_letter", how="left")
        .select(
            "postal_code",
            "country",
            code=pl.when(pl.col("zip5_known"))
            .then(pl.col("zip5_state"))
            .when(pl.col("zip5").is_not_null())
            .then(pl.col("zip3_state"))
            .when(pl.col("fsa").is_in(_NUNAVUT_FSAS))
            .then(pl.lit("NU"))
            .when(pl.col("fsa").is_not_null())
            .then(pl.col("fsa_state")),
        )
    )


def postal_state(postal_code: pl.Series, country: pl.Series | None = None) -> pl.Series:
    """State / territory code of a US ZIP (5 digits or ZIP+4 only) or province code of a Canadian postal code.

    A 4-digit value (an Excel-damaged ZIP with its leading zero dropped) is not guessed. Military (APO/FPO),
    unassigned and freely-associated-state ZIPs give null.
    """
    frame = pl.DataFrame([postal_code.cast(pl.Utf8).rename("postal_code"), _country_series(country, len(postal_code))])
    answers = _postal_state_distinct(frame.unique())
    joined = frame.join(answers, on=["postal_code", "country"], how="left", nulls_equal=True, maintain_order="left")
    return joined["code"].rename(postal_code.name or "postal_code")


def _column(frame: pl.DataFrame, name: str) -> pl.Series:
    if name in frame.columns:
        return frame[name].cast(pl.Utf8)
    return pl.Series(name, [None] * frame.height, dtype=pl.Utf8)


def rule_states(frame: pl.DataFrame) -> pl.Series:
    """List(Utf8) "rule_states": the distinct, sorted state codes a contact is tied to.

    The union of the phone's area-code state (`phone_state`), the address state (`state`, any spelling) and
    the ZIP / postal code's state (`postal_code`); any missing column counts as empty. The `country` column,
    when present, restricts the address state and postal code to the US and Canada (a US row keeps a Canadian
    province and the reverse: the stricter reading; another country: none of them); the phone state always
    counts. Every state's calling rules apply, the strictest winning.
    """
    country = frame["country"].cast(pl.Utf8) if "country" in frame.columns else None
    parts = pl.DataFrame(
        {
            "phone": normalize_state(_column(frame, "phone_state")),
            "address": normalize_state(_column(frame, "state"), country),
            "postal": postal_state(_column(frame, "postal_code"), country),
        }
    )
    return parts.select(rule_states=distinct_sorted(pl.concat_list("phone", "address", "postal")))["rule_states"]
