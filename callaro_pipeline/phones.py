"""Phone numbers to E.164, with the type, region, state and time zones phonenumbers gives them.

Two paths, both giving exactly what plain phonenumbers gives (see `normalize_one`, the oracle):

- Fast path, pure polars: North American values in the usual shapes ("(415) 555-0134", "+1 415.555.0134",
  "14155550134 x12") are reduced to their 10-digit national number and joined on a table keyed by its first
  six digits (area code + exchange, NPA-NXX).
- Blanks, spreadsheet scientific notation and North American shapes that cannot be valid (area code
  starting 0 or 1) are also answered in polars.
- Slow path: everything else is given to phonenumbers once per distinct value.

Why the NPA-NXX table is exact: for a NANP number, phonenumbers' answer (validity, type, region, time zones)
is a function of which metadata regexes the national number matches and of the longest time-zone key that
prefixes it. `_nanp_blocks` reads those regexes as automata and splits the national-number space into blocks
(prefixes) on which every regex verdict and the time-zone key are constant; phonenumbers is then asked about
one number per block. The few six-digit prefixes that are not uniform go to the slow path. (The automata
read regexes through the standard library's own parser, `re._parser`, present in Python 3.11 and 3.12.) Building the
blocks takes a few seconds, so they are cached under CALLARO_HOME/cache keyed on phonenumbers' version (an
upgrade rebuilds them, never reuses a stale table); lookups go through a dense array of the 10**6 prefixes.
"""

from __future__ import annotations

import os
import re
from functools import cache
from re import _constants as sre_constants
from re import _parser as sre_parser

import phonenumbers
import polars as pl
from phonenumbers import PhoneMetadata
from phonenumbers import timezone as pn_timezone
from phonenumbers.tzdata import TIMEZONE_DATA

from callaro_pipeline.config import callaro_home
from callaro_pipeline.timezones import read_reference

# Uploads mix many regions: without it, phonenumbers recompiles metadata regexes that fell out of re's
# 512-entry cache on nearly every call (about 10x slower per number).
phonenumbers.enable_pattern_cache()

PHONE_COLUMNS = [
    "phone_e164",
    "phone_extension",
    "phone_type",
    "phone_region",
    "phone_state",
    "phone_timezones",
    "phone_error",
    "phone_error_message",
]
PHONE_SCHEMA = {
    "phone_e164": pl.Utf8,
    "phone_extension": pl.Utf8,
    "phone_type": pl.Utf8,
    "phone_region": pl.Utf8,
    "phone_state": pl.Utf8,
    "phone_timezones": pl.List(pl.Utf8),
    "phone_error": pl.Utf8,
    "phone_error_message": pl.Utf8,
}
SPREADSHEET_DAMAGE_MESSAGE = (
    "the cell was damaged by a spreadsheet (scientific notation loses digits): re-export the file "
    "with the phone column formatted as text"
)
_SCIENTIFIC = re.compile(r"^\s*[+-]?\d(?:[.,]\d+)?[eE]\+?\d+\s*$")
# "4155550134.0": a spreadsheet turned the number into a float, losslessly; the ".0" is dropped.
_FLOAT_SUFFIX = r"^(\+?\d{7,15})\.0$"
# What phonenumbers tells about one value; `failure` ("missing", "spreadsheet", "unparseable", "invalid")
# becomes phone_error and its message at the end.
_ANSWER_SCHEMA = {
    name: PHONE_SCHEMA[name]
    for name in ("phone_e164", "phone_extension", "phone_type", "phone_region", "phone_timezones")
} | {"failure": pl.Utf8}
_TYPE_NAMES = {
    value: name.lower() for name, value in vars(phonenumbers.PhoneNumberType).items() if isinstance(value, int)
}
# The shapes the fast path takes: NANP digits with common punctuation, then an optional "x12", "ext. 12",
# "extension 12", "#12" or ";ext=12" (a subset of what phonenumbers reads as an extension; the rest goes slow).
_NANP_SHAPE = r"^\+?[0-9 ().\-]+$"
_EXTENSION_SUFFIX = (
    r"(?i)(?:[ \t,]*(?:ext(?:ension|n)?|x|#)[:.]?[ \t,\-]*(?<explicit>[0-9]{1,6})|;ext=(?<rfc>[0-9]{1,6}))$"
)
_PREFIX_DIGITS = 6
_NATIONAL_DIGITS = 10
_DIGIT_CHARS = "0123456789"
_EMPTY: frozenset[int] = frozenset()
# Geocoder spellings that differ from the state table's names.
_GEOCODER_STATE_NAMES = {"BRITISH COLOMBIA": "BC", "WASHINGTON D.C.": "DC", "WASHINGTON STATE": "WA"}


def normalize_one(raw: str | None, region: str) -> dict:
    """Plain phonenumbers on one value: the slow path, and the oracle the fast path must agree with."""
    if raw is None or not raw.strip():
        return _failure("missing")
    if _SCIENTIFIC.match(raw):
        return _failure("spreadsheet")
    try:
        number = phonenumbers.parse(re.sub(_FLOAT_SUFFIX, r"\1", raw.strip()), region)
    except phonenumbers.NumberParseException:
        return _failure("unparseable")
    if not phonenumbers.is_valid_number(number):
        return _failure("invalid")
    return {
        "phone_e164": phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        "phone_extension": number.extension or None,
        "phone_type": _TYPE_NAMES[phonenumbers.number_type(number)],
        "phone_region": phonenumbers.region_code_for_number(number),
        "phone_timezones": _known_zones(pn_timezone.time_zones_for_number(number)),
        "failure": None,
    }


def _failure(reason: str) -> dict:
    return dict.fromkeys(_ANSWER_SCHEMA) | {"phone_timezones": [], "failure": reason}


# Zones phonenumbers lists separately that the IANA database makes links of one zone (same clock since 1970):
# without this every UK mobile number would be "ambiguous" between London and the Crown Dependencies.
SAME_CLOCK_ZONES = {
    "Europe/Guernsey": "Europe/London",
    "Europe/Isle_of_Man": "Europe/London",
    "Europe/Jersey": "Europe/London",
}


def _known_zones(zones: tuple[str, ...]) -> list[str]:
    return list(dict.fromkeys(SAME_CLOCK_ZONES.get(zone, zone) for zone in zones if zone != "Etc/Unknown"))


class _DigitAutomaton:
    """A metadata regex as an automaton over digit strings (Thompson NFA, DFA states built on demand).

    Supports what libphonenumber metadata uses: literals, classes, groups, alternation and bounded or
    unbounded repeats. `prefix_match` reads the regex as `re.match` does (leading-digits patterns).
    """

    ALL, NONE, MIXED = "all", "none", "mixed"

    def __init__(self, pattern: str, prefix_match: bool = False):
        self.states: list[tuple] = []
        self.accept = self._add(("accept",))
        self.prefix_match = prefix_match
        self.start = self._closure([self._sequence(list(sre_parser.parse(pattern)), self.accept)])
        self._steps: dict = {}
        self._state_moves: dict = {}
        self._outcomes: dict = {}

    def _add(self, state: tuple) -> int:
        self.states.append(state)
        return len(self.states) - 1

    def _sequence(self, items: list, following: int) -> int:
        for op, argument in reversed(items):
            following = self._item(op, argument, following)
        return following

    def _item(self, op, argument, following: int) -> int:
        if op is sre_constants.LITERAL:
            return self._add(("digits", frozenset(chr(argument)) & frozenset(_DIGIT_CHARS), following))
        if op is sre_constants.IN:
            return self._add(("digits", _class_digits(argument), following))
        if op is sre_constants.SUBPATTERN:
            return self._sequence(list(argument[-1]), following)
        if op is sre_constants.BRANCH:
            return self._add(("split", [self._sequence(list(branch), following) for branch in argument[1]]))
        if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
            low, high, body = argument
            if high is sre_constants.MAXREPEAT:
                loop = self._add(("split", []))
                self.states[loop][1].extend([self._sequence(list(body), loop), following])
                start = loop
            else:
                start = following
                for _ in range(high - low):
                    start = self._add(("split", [self._sequence(list(body), start), following]))
            for _ in range(low):
                start = self._sequence(list(body), start)
            return start
        raise ValueError(f"unsupported construct in phone metadata regex: {op}")

    def _closure(self, starts: list[int]) -> frozenset[int]:
        seen, pending = set(), list(starts)
        while pending:
            state = pending.pop()
            if state in seen:
                continue
            seen.add(state)
            if self.states[state][0] == "split":
                pending.extend(self.states[state][1])
        return frozenset(s for s in seen if self.states[s][0] != "split")

    def step(self, current: frozenset[int], digit: str) -> frozenset[int]:
        key = (current, digit)
        if key not in self._steps:
            if self.prefix_match and self.accept in current:
                self._steps[key] = current
            else:
                self._steps[key] = frozenset().union(*(self._moves(state, digit) for state in current))
        return self._steps[key]

    def _moves(self, state: int, digit: str) -> frozenset[int]:
        key = (state, digit)
        if key not in self._state_moves:
            kind = self.states[state]
            self._state_moves[key] = self._closure([kind[2]]) if kind[0] == "digits" and digit in kind[1] else _EMPTY
        return self._state_moves[key]

    def outcome(self, current: frozenset[int], remaining: int) -> str:
        """Whether all, none, or some of the digit strings of length `remaining` complete a match."""
        if not current:
            return self.NONE
        if (self.prefix_match and self.accept in current) or remaining == 0:
            return self.ALL if self.accept in current else self.NONE
        key = (current, remaining)
        if key not in self._outcomes:
            verdicts = {self.outcome(self.step(current, d), remaining - 1) for d in _DIGIT_CHARS}
            self._outcomes[key] = verdicts.pop() if len(verdicts) == 1 else self.MIXED
        return self._outcomes[key]


def _class_digits(items) -> frozenset[str]:
    chars: set[str] = set()
    negate = False
    for op, argument in items:
        if op is sre_constants.NEGATE:
            negate = True
        elif op is sre_constants.LITERAL:
            chars.add(chr(argument))
        elif op is sre_constants.RANGE:
            chars.update(chr(code) for code in range(argument[0], argument[1] + 1))
        elif op is sre_constants.CATEGORY and argument is sre_constants.CATEGORY_DIGIT:
            chars.update(_DIGIT_CHARS)
        else:
            raise ValueError(f"unsupported class item in phone metadata regex: {op}")
    digits = frozenset(chars) & frozenset(_DIGIT_CHARS)
    return frozenset(_DIGIT_CHARS) - digits if negate else digits


def _nanp_automata() -> list[_DigitAutomaton]:
    """Every regex phonenumbers consults for a +1 number: each region's number-type patterns and leading digits."""
    automata = []
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1]:
        metadata = PhoneMetadata.metadata_for_region(region)
        descriptions = [
            metadata.general_desc,
            metadata.fixed_line,
            metadata.mobile,
            metadata.toll_free,
            metadata.premium_rate,
            metadata.shared_cost,
            metadata.personal_number,
            metadata.voip,
            metadata.pager,
            metadata.uan,
            metadata.voicemail,
        ]
        patterns = {d.national_number_pattern for d in descriptions if d is not None and d.national_number_pattern}
        automata.extend(_DigitAutomaton(pattern) for pattern in sorted(patterns))
        if metadata.leading_digits:
            automata.append(_DigitAutomaton(metadata.leading_digits, prefix_match=True))
    return automata


def _keys_below(data: dict) -> set[str]:
    """National-number prefixes that have a longer +1 key beneath them in a phonenumbers prefix table."""
    return {key[1:end] for key in data if key.startswith("1") for end in range(1, len(key))}


def _nanp_blocks() -> pl.DataFrame:
    """Prefixes of the national number on which phonenumbers' answer is constant (`uniform`), and the few
    six-digit prefixes on which it is not; together they cover every six-digit prefix exactly once."""
    automata = _nanp_automata()
    zone_keys_below = _keys_below(TIMEZONE_DATA)
    uniform, mixed = [], []
    pending = [("", tuple((a, a.start) for a in automata))]
    while pending:
        prefix, states = pending.pop()
        live = tuple((a, s) for a, s in states if s)
        remaining = _NATIONAL_DIGITS - len(prefix)
        if prefix not in zone_keys_below and all(a.outcome(s, remaining) != a.MIXED for a, s in live):
            uniform.append(prefix)
        elif len(prefix) == _PREFIX_DIGITS:
            mixed.append(prefix)
        else:
            pending.extend((prefix + d, tuple((a, a.step(s, d)) for a, s in live)) for d in _DIGIT_CHARS)
    answers = [_block_answer(prefix) for prefix in uniform]
    return pl.DataFrame(
        {"block": uniform + mixed, "uniform": [True] * len(uniform) + [False] * len(mixed)},
        schema={"block": pl.Utf8, "uniform": pl.Boolean},
    ).with_columns(pl.DataFrame(answers + [_failure("invalid")] * len(mixed), schema=_ANSWER_SCHEMA))


def _block_answer(prefix: str) -> dict:
    """phonenumbers' answer for any number of a uniform block (asked about its first number)."""
    number = phonenumbers.PhoneNumber(country_code=1, national_number=int(prefix.ljust(_NATIONAL_DIGITS, "0")))
    if not phonenumbers.is_valid_number(number):
        return _failure("invalid")
    return {
        "phone_e164": None,
        "phone_extension": None,
        "phone_type": _TYPE_NAMES[phonenumbers.number_type(number)],
        "phone_region": phonenumbers.region_code_for_number(number),
        "phone_timezones": _known_zones(pn_timezone.time_zones_for_number(number)),
        "failure": None,
    }


@cache
def nanp_blocks() -> pl.DataFrame:
    """`_nanp_blocks`, cached on disk per phonenumbers version: building it takes a few seconds."""
    path = callaro_home() / "cache" / f"nanp_blocks-phonenumbers-{phonenumbers.__version__}.parquet"
    if path.exists():
        return pl.read_parquet(path)
    blocks = _nanp_blocks()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    blocks.write_parquet(partial)
    os.replace(partial, path)
    return blocks


def _dense_index(prefixes: pl.Series) -> pl.Series:
    """For each of the 10**6 six-digit prefixes, the position in `prefixes` (0 to 6 digits each) of the
    longest one that covers it, or null."""
    width = pl.lit(10, dtype=pl.Int64).pow(_PREFIX_DIGITS - pl.col("prefix").str.len_chars())
    first = pl.col("prefix").str.pad_end(1, "0").cast(pl.Int64) * width
    ranges = (
        prefixes.rename("prefix")
        .to_frame()
        .with_row_index("position")
        .with_columns(depth=pl.col("prefix").str.len_chars(), six=pl.int_ranges(first, first + width))
    )
    index = pl.Series("position", [None] * 10**_PREFIX_DIGITS, dtype=pl.UInt32)
    for _, same_depth in ranges.sort("depth").group_by("depth", maintain_order=True):
        covered = same_depth.select("position", "six").explode("six")
        index = index.scatter(covered["six"], covered["position"])
    return index


@cache
def _block_index() -> pl.Series:
    return _dense_index(nanp_blocks()["block"])


@cache
def _state_index() -> tuple[pl.Series, pl.Series]:
    states = read_reference("nanp_prefix_states.csv")
    return _dense_index(states["prefix"]), states["state"]


def _lookup_state(prefix6: pl.Series) -> pl.Series:
    index, states = _state_index()
    rows = index.gather(prefix6.fill_null(0))
    return states.gather(rows.fill_null(0)).set(rows.is_null() | prefix6.is_null(), None).rename("phone_state")


def geocoder_state_rows() -> list[tuple[str, str | None]]:
    """(national prefix, state) from phonenumbers' English geocoder data, for reference/nanp_prefix_states.csv.

    The geocoder names a place for an area code ("California") or an exchange ("San Francisco, CA"). Only
    entries that change the state given by their nearest shorter prefix are kept, so the file stays small.
    Importing the geocoder data takes seconds, which is why the result is committed rather than computed.
    """
    from phonenumbers.geodata import GEOCODE_DATA

    states = read_reference("state_timezones.csv").filter(pl.col("country").is_in(["US", "CA"]))
    names = dict(zip(states["name"].str.to_uppercase(), states["state"], strict=True)) | _GEOCODER_STATE_NAMES
    codes = set(states["state"])
    found = {}
    for key, descriptions in GEOCODE_DATA.items():
        if key.startswith("1") and "en" in descriptions and len(key) > 1:
            place = descriptions["en"]
            suffix = place.rsplit(", ", 1)[-1] if ", " in place else None
            found[key[1:]] = suffix if suffix in codes else names.get(place.upper())
    rows = []
    for prefix in sorted(found, key=lambda p: (len(p), p)):
        parents = [prefix[:end] for end in range(len(prefix) - 1, 0, -1) if prefix[:end] in found]
        if not parents or found[parents[0]] != found[prefix]:
            rows.append((prefix, found[prefix]))
    return rows


def _fast_region(region: str) -> bool:
    """Default regions for which a 10-digit national number (or 1 + it) parses as itself: national prefix "1"."""
    metadata = PhoneMetadata.metadata_for_region(region)
    return metadata is not None and metadata.country_code == 1 and metadata.national_prefix_for_parsing == "1"


def _with_nanp_shape(rows: pl.DataFrame, region: str) -> pl.DataFrame:
    """Add `national` (10 digits) and `fast_extension` for values the fast path can take, national null otherwise,
    and `impossible_national` for North American shapes that cannot be valid.

    Computed in stages so that each regex runs once per value.
    """
    fast_region = _fast_region(region)
    digit_count = pl.col("digits").str.len_bytes()
    starts_with_one = pl.col("digits").str.starts_with("1")
    without_plus = ~pl.col("main").str.starts_with("+")
    return (
        rows.with_columns(text=pl.col("raw").str.strip_chars().str.replace(_FLOAT_SUFFIX, "$1"))
        .with_columns(extension_parts=pl.col("text").str.extract_groups(_EXTENSION_SUFFIX))
        .with_columns(
            fast_extension=pl.coalesce(
                pl.col("extension_parts").struct.field("explicit"), pl.col("extension_parts").struct.field("rfc")
            )
        )
        .with_columns(
            main=pl.when(pl.col("fast_extension").is_null())
            .then(pl.col("text"))
            .otherwise(pl.col("text").str.replace(_EXTENSION_SUFFIX, ""))
        )
        .with_columns(
            digits=pl.col("main").str.replace_all(r"[^0-9]", ""),
            usable_shape=pl.col("main").str.contains(_NANP_SHAPE) & (pl.col("text").str.len_chars() <= 250),
        )
        .with_columns(
            national=pl.when(~pl.col("usable_shape"))
            .then(None)
            .when(~without_plus & (digit_count == 11) & starts_with_one)
            .then(pl.col("digits").str.slice(1))
            .when(without_plus & pl.lit(fast_region) & (digit_count == 10))
            .then(pl.col("digits"))
            .when(without_plus & pl.lit(fast_region) & (digit_count == 11) & starts_with_one)
            .then(pl.col("digits").str.slice(1))
        )
        .with_columns(
            # A national number starting 0 or 1 is never a valid NANP number (phonenumbers strips a "1" as the
            # national prefix, leaving 9 digits); "011" is the international dialling prefix, so it goes slow.
            impossible_national=pl.col("national").str.contains("^[01]") & ~pl.col("digits").str.starts_with("011"),
            national=pl.when(pl.col("national").str.contains("^[2-9]")).then(pl.col("national")),
        )
        .drop("text", "extension_parts", "main", "digits", "usable_shape")
    )


def _fast_answers(rows: pl.DataFrame) -> pl.DataFrame:
    """Answers that need no phonenumbers call, row by row: blanks, spreadsheet damage and values whose
    NPA-NXX block is uniform. `fast` is false where the slow path must answer."""
    prefix6 = rows["national"].str.slice(0, _PREFIX_DIGITS).cast(pl.Int64)
    block_answers = nanp_blocks().select("uniform", "phone_type", "phone_region", "phone_timezones", "failure")
    answers = pl.concat([rows, block_answers[_block_index().gather(prefix6)]], how="horizontal")
    blank = pl.col("raw").is_null() | (pl.col("raw").str.strip_chars() == "")
    early_failure = (
        pl.when(blank)
        .then(pl.lit("missing"))
        .when(pl.col("raw").str.contains(_SCIENTIFIC.pattern))
        .then(pl.lit("spreadsheet"))
        .when(pl.col("impossible_national").fill_null(False))
        .then(pl.lit("invalid"))
    )
    valid = early_failure.is_null() & pl.col("failure").is_null()
    return answers.select(
        "raw",
        fast=early_failure.is_not_null() | pl.col("uniform").fill_null(False),
        phone_e164=pl.when(valid).then(pl.lit("+1") + pl.col("national")),
        phone_extension=pl.when(valid).then(pl.col("fast_extension")),
        phone_type=pl.when(valid).then(pl.col("phone_type")),
        phone_region=pl.when(valid).then(pl.col("phone_region")),
        phone_timezones=pl.when(valid).then(pl.col("phone_timezones")).otherwise(pl.lit([], dtype=pl.List(pl.Utf8))),
        failure=pl.coalesce(early_failure, pl.col("failure")),
    )


def _slow_path(values: pl.Series, region: str) -> pl.DataFrame:
    rows = [normalize_one(value, region) for value in values]
    return pl.DataFrame(rows, schema=_ANSWER_SCHEMA).select(values.alias("raw"), pl.all())


def _with_state(answers: pl.DataFrame) -> pl.DataFrame:
    north_american = pl.col("phone_region").is_in(["US", "CA"])
    prefix6 = answers.select(
        pl.when(north_american).then(pl.col("phone_e164").str.slice(2, _PREFIX_DIGITS).cast(pl.Int64))
    ).to_series()
    return answers.with_columns(_lookup_state(prefix6))


def _error_columns(region: str) -> list[pl.Expr]:
    failure = pl.col("failure")
    international = pl.col("raw").str.strip_chars().str.starts_with("+")
    invalid_message = (
        pl.when(international)
        .then(pl.lit("not a valid international phone number"))
        .otherwise(pl.lit(f"not a valid number for region {region}"))
    )
    return [
        pl.when(failure == "missing")
        .then(pl.lit("missing_required"))
        .when(failure.is_not_null())
        .then(pl.lit("invalid_phone"))
        .alias("phone_error"),
        pl.when(failure == "missing")
        .then(pl.lit("phone number is missing"))
        .when(failure == "spreadsheet")
        .then(pl.lit(SPREADSHEET_DAMAGE_MESSAGE))
        .when(failure == "unparseable")
        .then(pl.lit("not a phone number"))
        .when(failure == "invalid")
        .then(invalid_message)
        .alias("phone_error_message"),
    ]


def normalize_phones(raw: pl.Series, default_region: str = "US") -> pl.DataFrame:
    """One row per value of `raw`, in order, with PHONE_COLUMNS.

    Values with a leading "+" are read in their own country, others in `default_region`. North American
    values in the usual shapes are answered row by row from the NPA-NXX blocks; the rest once per distinct
    value by phonenumbers.
    """
    region = default_region.strip().upper()
    rows = _with_nanp_shape(raw.cast(pl.Utf8).rename("raw").to_frame(), region)
    fast = _fast_answers(rows)
    slow_values = fast.filter(~pl.col("fast"))["raw"].unique()
    slow = fast.select("raw").join(
        _slow_path(slow_values, region), on="raw", how="left", nulls_equal=True, maintain_order="left"
    )
    answer_columns = list(_ANSWER_SCHEMA)
    answers = fast.select(
        "raw",
        *(pl.when(pl.col("fast")).then(pl.col(name)).otherwise(slow[name]).alias(name) for name in answer_columns),
    )
    return _with_state(answers).with_columns(_error_columns(region)).select(PHONE_COLUMNS)
