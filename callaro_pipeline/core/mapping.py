"""Source columns to contact fields: a mapping file, the campaign's remembered mapping, or automatic matching.

Automatic matching normalizes headers (case, accents, punctuation), looks them up in a multilingual alias table,
then falls back to fuzzy matching (rapidfuzz) above a confidence threshold. A column is never guessed into a
field below the threshold and two columns never feed one field: what cannot be mapped is reported as unmapped.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl
import yaml
from rapidfuzz import fuzz, process

from callaro_pipeline.core.config import DUPLICATE_POLICIES, CustomField
from callaro_pipeline.core.errors import MappingError
from callaro_pipeline.core.schema import STANDARD_FIELDS

CUSTOM_PREFIX = "custom."
EXACT_SCORE = 100.0
RENAME_THRESHOLD = 80.0

# Per field, the headers people actually use (English, German, Spanish, French). Order matters: when two columns
# match the same field equally well, the one whose alias comes first wins ("Phone" beats "Mobile").
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "phone": (
        "phone", "phone number", "phone no", "phone #", "telephone", "telephone number", "tel", "tel no",
        "mobile", "mobile phone", "mobile number", "mobile phone number", "cell", "cell phone", "cellphone",
        "contact number", "number", "msisdn", "primary phone", "dial number", "business phone", "work phone",
        "office phone", "direct phone", "direct dial", "home phone", "other phone", "company phone",
        "telefon", "telefonnummer", "rufnummer", "handy", "handynummer", "mobil", "mobilnummer", "mobiltelefon",
        "telefono", "numero de telefono", "movil", "celular", "numero movil",
        "telephone portable", "portable", "numero de telephone", "tel portable",
    ),
    "email": (
        "email", "email address", "mail", "e mail address", "emailadresse", "e mail adresse", "mailadresse",
        "correo", "correo electronico", "email correo",
        "courriel", "adresse email", "adresse e mail", "adresse courriel", "mel",
    ),
    "first_name": (
        "first name", "firstname", "given name", "forename", "fname", "first",
        "vorname", "nombre", "prenom",
    ),
    "last_name": (
        "last name", "lastname", "surname", "family name", "lname", "last",
        "nachname", "familienname", "zuname", "apellido", "apellidos", "nom", "nom de famille",
    ),
    "full_name": (
        "full name", "name", "fullname", "contact name", "contact", "customer name", "lead name",
        "vollstandiger name", "kontaktname", "nombre completo", "nom complet",
    ),
    "company": (
        "company", "company name", "organization", "organisation", "account", "account name", "business",
        "business name", "employer",
        "firma", "unternehmen", "firmenname", "empresa", "compania", "nombre de la empresa",
        "societe", "entreprise", "nom de l entreprise",
    ),
    "timezone": (
        "time zone", "timezone", "tz", "zeitzone", "zona horaria", "huso horario", "fuseau horaire",
    ),
    "country": (
        "country", "country code", "land", "staat land", "pais", "codigo de pais", "pays", "code pays",
        "country region", "mailing country", "billing country", "country/region",
    ),
    "state": (
        "state", "province", "state province", "region", "state code", "st", "state region",
        "mailing state province", "mailing state", "billing state province", "billing state", "state or province",
        "bundesland", "estado", "provincia", "etat",
    ),
    "postal_code": (
        "zip", "zip code", "zipcode", "postal code", "postcode", "post code", "postal", "zip postal code",
        "postal code zip", "mailing zip postal code", "mailing zip", "mailing postal code", "billing zip postal code",
        "billing zip",
        "plz", "postleitzahl", "codigo postal", "cp", "code postal",
    ),
    "lead_source": (
        "lead source", "source", "lead origin", "origin", "channel", "campaign source",
        "quelle", "herkunft", "lead quelle", "fuente", "origen", "fuente del lead", "origine", "provenance",
    ),
    "consent": (
        "consent", "opt in", "optin", "opted in", "marketing consent", "call consent", "permission",
        "einwilligung", "zustimmung", "consentimiento", "consentement",
    ),
    "consent_date": (
        "consent date", "opt in date", "optin date", "consented at", "consent timestamp",
        "einwilligungsdatum", "datum der einwilligung", "fecha de consentimiento", "date de consentement",
        "date du consentement",
    ),
    "consent_source": (
        "consent source", "opt in source", "consent method", "consent channel",
        "einwilligungsquelle", "quelle der einwilligung", "fuente del consentimiento", "origen del consentimiento",
        "source du consentement", "source de consentement",
    ),
    "external_id": (
        "external id", "id", "customer id", "contact id", "lead id", "record id", "crm id", "client id",
        "reference", "ref",
        "kundennummer", "kunden id", "kunden nr", "referenz", "id cliente", "numero de cliente", "referencia",
        "identifiant", "id client", "numero client", "reference client",
    ),
}  # fmt: skip
# Headers of CRM exports that name no standard field: never matched by similarity (e.g. "Mailing Street" is not
# `state`), reported as unmapped unless a custom field of that name is declared.
NOT_FIELDS = frozenset(
    {
        "street", "address", "street address", "address line 1", "address line 2", "mailing street", "billing street",
        "mailing address", "billing address", "city", "mailing city", "billing city", "town", "ort", "stadt",
        "ciudad", "ville", "phone type", "phone extension type",
    }
)  # fmt: skip
# Source columns that may feed `phone` together, in priority order: the first valid number is the phone.
MULTI_SOURCE_FIELDS = ("phone",)


@dataclass
class Mapping:
    fields: dict[str, str]
    """source column -> standard field or `custom.<name>`"""
    unmapped: list[str]
    """source columns mapped to nothing: reported, never imported"""
    source: str
    """where it came from: "file", "auto" (matched by name) or "remembered" (the campaign's last mapping)"""
    scores: dict[str, float]
    """auto-match confidence (0-100) per mapped source column"""
    default_region: str | None = None
    duplicates: str | None = None
    phone_columns: list[str] = field(default_factory=list)
    """every source column mapped to `phone`, in priority order (the first valid number is the phone; the
    others are kept as `other_phones_e164`); empty means the one column of `fields`"""

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Mapping:
        try:
            raw = json.loads(text)
            return cls(
                fields={str(k): str(v) for k, v in raw["fields"].items()},
                unmapped=[str(c) for c in raw.get("unmapped", [])],
                source=str(raw.get("source", "remembered")),
                scores={str(k): float(v) for k, v in raw.get("scores", {}).items()},
                default_region=raw.get("default_region"),
                duplicates=raw.get("duplicates"),
                phone_columns=[str(c) for c in raw.get("phone_columns") or []],
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MappingError(f"stored mapping is unreadable: {exc}") from None


@dataclass
class ColumnDrift:
    added: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    """(previous name, current name)"""
    unmapped_fields: list[tuple[str, str]] = field(default_factory=list)
    """(field, its column last time): fields the campaign's last mapping filled that this file leaves unmapped
    (set by `lost_fields`); they block the upload"""

    @property
    def changed(self) -> bool:
        return bool(self.added or self.missing or self.renamed or self.unmapped_fields)

    def as_dict(self) -> dict[str, object]:
        return {
            "added": self.added,
            "missing": self.missing,
            "renamed": self.renamed,
            "unmapped_fields": [list(pair) for pair in self.unmapped_fields],
        }

    def blocking_reason(self) -> str | None:
        """Why the drift blocks the upload, in words (None when it does not)."""
        if not self.unmapped_fields:
            return None
        lost = ", ".join(f"{name} (was column {_shown(column)!r})" for name, column in self.unmapped_fields)
        return (
            f"column drift since the campaign's last upload leaves {lost} unmapped; fix the file, or import it "
            "with --mapping naming its columns to accept the new layout"
        )


def _shown(text: str, limit: int = 80) -> str:
    """A user-given name or value cut for a message: 80 characters and an ellipsis."""
    return text if len(text) <= limit else text[:limit] + "\u2026"


def lost_fields(
    remembered: Mapping | None, mapping: Mapping, previous_columns: list[str] | None
) -> list[tuple[str, str]]:
    """Fields the campaign's last mapping filled from a column that this upload no longer maps to anything.
    Only for a recurring file mapped by name (a mapping file given for the upload or the campaign is explicit,
    and one naming a column the file lacks is refused anyway) and only when there was a previous upload."""
    if remembered is None or previous_columns is None or mapping.source == "file":
        return []
    now_mapped = set(mapping.fields.values())
    lost: dict[str, str] = {}
    for column, target in remembered.fields.items():
        if target not in now_mapped and target not in lost:
            lost[target] = column
    return sorted(lost.items())


def normalize_header(header: str) -> str:
    """`"  Téléphone-Nr. "` -> `"telephone nr"`: lowercase ASCII words separated by single spaces."""
    decomposed = unicodedata.normalize("NFKD", str(header))
    ascii_text = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return " ".join(re.sub(r"[^0-9a-z#]+", " ", ascii_text).split())


def _compact(normalized: str) -> str:
    """Spacing and `_` / `-` differences never matter: "E-mail", "email" and "e mail" are one header."""
    return normalized.replace(" ", "")


def _is_custom(target: str) -> bool:
    return target.startswith(CUSTOM_PREFIX)


def _alias_table(registry: dict[str, CustomField]) -> list[tuple[str, str, int]]:
    """(normalized alias, target field, rank within the field) for every standard field and custom field."""
    table = []
    for target, aliases in FIELD_ALIASES.items():
        names = (target.replace("_", " "), *aliases)
        table += [(normalize_header(alias), target, rank) for rank, alias in enumerate(names)]
    for name in registry:
        table.append((normalize_header(name), CUSTOM_PREFIX + name, 0))
    return table


def _exact_matches(header: str, table: list[tuple[str, str, int]]) -> list[tuple[float, int, str]]:
    return [(EXACT_SCORE, rank, target) for alias, target, rank in table if _compact(alias) == _compact(header)]


def _fuzzy_matches(header: str, table: list[tuple[str, str, int]], threshold: float) -> list[tuple[float, int, str]]:
    # token_sort_ratio, not WRatio: WRatio's partial matching scores "Phone Type" 90 against "phone".
    aliases = [alias for alias, _, _ in table]
    matches = process.extract(header, aliases, scorer=fuzz.token_sort_ratio, score_cutoff=threshold, limit=None)
    return [(float(score), table[index][2], table[index][1]) for _, score, index in matches]


def _candidates(column: str, table: list[tuple[str, str, int]], threshold: float) -> list[tuple[float, int, str]]:
    """(score, alias rank, field) for every field this header could be: exact alias hits (score 100) when there
    are any, else fuzzy matches at or above the threshold."""
    header = normalize_header(column)
    if not header:
        return []
    exact = _exact_matches(header, table)
    if exact or header in NOT_FIELDS:
        return exact
    return _fuzzy_matches(header, table, threshold)


def _assign(columns: list[str], candidates: dict[str, list[tuple[float, int, str]]]) -> dict[str, tuple[str, float]]:
    """Greedy by confidence: each field goes to its best column, each column to its best free field."""
    ranked = sorted(
        (
            (score, rank, position, column, target)
            for position, column in enumerate(columns)
            for score, rank, target in candidates.get(column, [])
        ),
        key=lambda item: (-item[0], item[1], item[2]),
    )
    chosen: dict[str, tuple[str, float]] = {}
    taken: set[str] = set()
    for score, _, _, column, target in ranked:
        if column not in chosen and target not in taken:
            chosen[column] = (target, round(score, 1))
            taken.add(target)
    return chosen


def _usable_remembered(remembered: Mapping, registry: dict[str, CustomField]) -> dict[str, str]:
    return {
        column: target
        for column, target in remembered.fields.items()
        if target in STANDARD_FIELDS or (_is_custom(target) and target[len(CUSTOM_PREFIX) :] in registry)
    }


def auto_map(
    columns: list[str],
    registry: dict[str, CustomField],
    remembered: Mapping | None = None,
    threshold: float = 85,
) -> Mapping:
    """Map headers by name: the remembered mapping for the columns it mapped, then aliases, then fuzzy matches.

    Columns the remembered mapping left unmapped are matched again: the registry may have gained their field."""
    fields: dict[str, str] = {}
    scores: dict[str, float] = {}
    if remembered is not None:
        reusable = _usable_remembered(remembered, registry)
        for column in columns:
            if column in reusable and reusable[column] not in fields.values():
                fields[column], scores[column] = reusable[column], EXACT_SCORE
    reused = bool(fields)
    table = [entry for entry in _alias_table(registry) if entry[1] not in fields.values()]
    open_columns = [column for column in columns if column not in fields]
    candidates = {column: _candidates(column, table, threshold) for column in open_columns}
    for column, (target, score) in _assign(open_columns, candidates).items():
        fields[column], scores[column] = target, score
    phone_columns = _phone_columns_by_name(columns, fields, registry, remembered)
    for column in phone_columns:
        fields[column], scores[column] = "phone", scores.get(column, EXACT_SCORE)
    return Mapping(
        fields={column: fields[column] for column in columns if column in fields},
        unmapped=[column for column in columns if column not in fields],
        source="remembered" if reused else "auto",
        scores={column: scores[column] for column in columns if column in fields},
        default_region=remembered.default_region if remembered is not None else None,
        duplicates=remembered.duplicates if remembered is not None else None,
        phone_columns=phone_columns if len(phone_columns) > 1 else [],
    )


def _phone_columns_by_name(
    columns: list[str], fields: dict[str, str], registry: dict[str, CustomField], remembered: Mapping | None
) -> list[str]:
    """The column mapped to phone first, then the other unmapped columns whose header is exactly a phone alias
    ("Mobile Phone Number" next to "Phone Number"), in alias order: a row with only a mobile number has a phone."""
    primary = [column for column in columns if fields.get(column) == "phone"]
    if remembered is not None and remembered.phone_columns:
        primary = [c for c in remembered.phone_columns if c in columns and fields.get(c, "phone") == "phone"] or primary
    ranks = {alias: rank for alias, target, rank in _alias_table({}) if target == "phone"}
    extra: list[tuple[int, int, str]] = []
    for position, column in enumerate(columns):
        alias = _compact_alias(column, ranks) if column not in fields and column not in primary else None
        if alias is not None:
            extra.append((ranks[alias], position, column))
    extra.sort()
    return [*primary, *(column for _, _, column in extra)] if primary else []


def _compact_alias(column: str, ranks: dict[str, int]) -> str | None:
    header = _compact(normalize_header(column))
    return next((alias for alias in ranks if _compact(alias) == header), None)


def _check_target(target: str, column: str, registry: dict[str, CustomField]) -> None:
    if _is_custom(target):
        name = target[len(CUSTOM_PREFIX) :]
        if name not in registry:
            declared = ", ".join(sorted(registry)) or "none"
            raise MappingError(
                f"column {column!r} maps to {target}, which is not declared in custom_fields.yaml "
                f"(declared: {declared})"
            )
    elif target not in STANDARD_FIELDS:
        hint = f" (did you mean {CUSTOM_PREFIX}{target}?)" if target in registry else ""
        raise MappingError(
            f"column {column!r} maps to unknown field {target!r}{hint}; standard fields: {', '.join(STANDARD_FIELDS)}"
        )


def load_mapping_file(path: Path, columns: list[str], registry: dict[str, CustomField]) -> Mapping:
    """Read a mapping YAML (`columns: {Source: field}`, optional `default_region`, `duplicates`) and check it
    against the file's columns and the custom-field registry. A column the file does not name stays unmapped."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(f"cannot read mapping file {Path(path).name}: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError):
        raise MappingError(f"mapping file {Path(path).name} is not valid YAML") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("columns"), dict):
        raise MappingError(f"mapping file {Path(path).name} must hold `columns:` mapping source columns to fields")
    fields: dict[str, str] = {}
    phone_columns: list[str] = []
    for key, value in raw["columns"].items():
        # `Source: field`, or `field: [Source, Source, ...]` for a field fed by several columns in priority order
        pairs = [(str(source), str(key)) for source in value] if isinstance(value, list) else [(str(key), value)]
        for column, target in pairs:
            if column not in columns:
                raise MappingError(f"mapping file names column {_shown(column)!r}, which is not in the uploaded file")
            if target is None or str(target).strip() == "":
                continue  # an explicit "import nothing from this column"
            target = str(target).strip()
            _check_target(target, column, registry)
            if isinstance(value, list) and target not in MULTI_SOURCE_FIELDS:
                raise MappingError(
                    f"only {', '.join(MULTI_SOURCE_FIELDS)} may name several columns in a list, not {_shown(target)!r}"
                )
            twin = next((other for other, used in fields.items() if used == target), None)
            if twin is not None and target not in MULTI_SOURCE_FIELDS:
                raise MappingError(
                    f"columns {_shown(twin)!r} and {_shown(column)!r} are both mapped to {target}: map only one"
                )
            if column in fields and fields[column] != target:
                raise MappingError(f"column {_shown(column)!r} is mapped twice")
            fields[column] = target
            if target == "phone" and column not in phone_columns:
                phone_columns.append(column)
    default_region = raw.get("default_region")
    if default_region is not None and not re.fullmatch(r"[A-Za-z]{2}", str(default_region)):
        raise MappingError(f"mapping file default_region must be a two-letter country code, not {default_region!r}")
    duplicates = raw.get("duplicates")
    if duplicates is not None and duplicates not in DUPLICATE_POLICIES:
        raise MappingError(f"mapping file duplicates must be one of {', '.join(DUPLICATE_POLICIES)}")
    return Mapping(
        fields={column: fields[column] for column in columns if column in fields},
        unmapped=[column for column in columns if column not in fields],
        source="file",
        scores={column: EXACT_SCORE for column in fields},
        default_region=str(default_region).upper() if default_region else None,
        duplicates=str(duplicates) if duplicates else None,
        phone_columns=phone_columns if len(phone_columns) > 1 else [],
    )


def source_columns(mapping: Mapping) -> dict[str, str]:
    """field (standard name or `custom.<name>`) -> the source column it comes from (for phone fed by several
    columns: the first in priority order)."""
    by_field: dict[str, str] = {}
    for column, target in mapping.fields.items():
        by_field.setdefault(target, column)
    if mapping.phone_columns:
        by_field["phone"] = mapping.phone_columns[0]
    return by_field


def phone_columns(mapping: Mapping) -> list[str]:
    """Every source column of `phone`, in priority order."""
    if mapping.phone_columns:
        return list(mapping.phone_columns)
    return [column for column, target in mapping.fields.items() if target == "phone"]


# Spreadsheet vocabulary for yes/no cells, shared by boolean custom fields and consent.
TRUE_WORDS = ("yes", "y", "true", "t", "1", "ja", "j", "si", "sí", "oui")
FALSE_WORDS = ("no", "n", "false", "f", "0", "nein", "non")


# Bidi controls (U+200E/F, U+202A-202E, U+2066-2069, U+061C) reorder what a reader sees ("evil\u202egnp.exe"):
# stripped from every stored value. Zero-width space, word joiner and BOM mean nothing in a value: removed too.
# Zero-width (non-)joiners shape Indic, Arabic and emoji text: kept inside a value, stripped at its ends.
INVISIBLE_CHARS = "[\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\u061c\ufeff]"
_EDGE_JOINERS = "\u200c\u200d"


def _blank_to_null(expr: pl.Expr) -> pl.Expr:
    """Trimmed text without invisible characters; null when nothing visible is left (a name made only of
    zero-width or bidi characters is a missing name)."""
    text = (
        expr.cast(pl.Utf8)
        .str.replace_all(INVISIBLE_CHARS, "")
        .str.strip_chars()
        .str.strip_chars(_EDGE_JOINERS)
        .str.strip_chars()
    )
    return pl.when(text == "").then(None).otherwise(text)


def typed_custom_value(text: pl.Expr, field_type: str) -> pl.Expr:
    """The value of a custom-field cell in its declared type, or null when it does not fit (or is blank).

    Applying it to its own output as text gives the same value, so validation can re-check stored JSON.
    Each conversion is one chain of string operations: eager polars does not share repeated subexpressions."""
    if field_type == "integer":
        return text.str.extract(r"^([+-]?\d+)(?:\.0+)?$", 1).cast(pl.Int64, strict=False)
    if field_type == "number":
        number = (
            text.str.replace_all(r"^[$€£]\s*|\s*[$€£]$", "")
            # a decimal comma is one not followed by exactly three digits ("12,5"); the others group thousands
            .str.replace(r"^([+-]?\d+),(\d{1,2}|\d{4,})$", "${1}.${2}")
            .str.replace_all(r",(\d{3})\b", "${1}")
            .str.extract(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)$", 1)
            .cast(pl.Float64, strict=False)
        )
        return number.replace([float("inf"), float("-inf")], None)
    if field_type == "boolean":
        words = dict.fromkeys(TRUE_WORDS, True) | dict.fromkeys(FALSE_WORDS, False)
        return text.str.to_lowercase().replace_strict(words, default=None, return_dtype=pl.Boolean)
    if field_type == "date":
        iso_date = r"^(\d{4}-\d{2}-\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
        return text.str.extract(iso_date, 1).str.to_date("%Y-%m-%d", strict=False)
    return text


def _json_string(expr: pl.Expr) -> pl.Expr:
    """A text expression as a JSON string literal (or `null`), escaped by polars' own encoder."""
    return pl.struct(expr.alias("v")).struct.json_encode().str.slice(5).str.strip_suffix("}")


def _custom_json_value(text: pl.Expr, field_type: str) -> pl.Expr:
    """JSON for one cell: the typed value when it fits its type, else the original text (validation flags it)."""
    if field_type == "string":
        return _json_string(text)
    typed = typed_custom_value(text, field_type)
    literal = _json_string(typed.cast(pl.Utf8)) if field_type == "date" else typed.cast(pl.Utf8)
    return pl.when(typed.is_not_null()).then(literal).otherwise(_json_string(text))


def custom_fields_json(custom: dict[str, tuple[str, str]]) -> pl.Expr:
    """`{name: (source column, type)}` -> one JSON object per row (`{}` when no custom field is mapped)."""
    parts: list[pl.Expr] = []
    for name, (column, field_type) in custom.items():
        separator = "{" if not parts else ","
        parts += [
            pl.lit(f"{separator}{json.dumps(name)}:"),
            _custom_json_value(_blank_to_null(pl.col(column)), field_type),
        ]
    if not parts:
        return pl.lit("{}").alias("custom_fields")
    return pl.concat_str([*parts, pl.lit("}")]).alias("custom_fields")


def apply_mapping(rows: pl.DataFrame, mapping: Mapping, registry: dict[str, CustomField]) -> pl.DataFrame:
    """Source rows -> row_number, every standard field as trimmed text (null when blank or not mapped), and
    custom_fields as a JSON object string. Rows without a row_number column are numbered from 2 (header = 1)."""
    missing = [column for column in mapping.fields if column not in rows.columns]
    if missing:
        raise MappingError(f"mapped column(s) not in the file: {', '.join(repr(c) for c in missing)}")
    for column, target in mapping.fields.items():
        _check_target(target, column, registry)
    by_field = source_columns(mapping)
    if "row_number" not in rows.columns:
        rows = rows.with_row_index("row_number", offset=2)
    standard = [
        (_blank_to_null(pl.col(by_field[name])) if name in by_field else pl.lit(None, pl.Utf8)).alias(name)
        for name in STANDARD_FIELDS
    ]
    custom = {
        target[len(CUSTOM_PREFIX) :]: (column, registry[target[len(CUSTOM_PREFIX) :]].type)
        for target, column in by_field.items()
        if _is_custom(target)
    }
    alternates = phone_columns(mapping)[1:]
    extra = []
    if alternates:  # the other phone columns' values, in priority order (validation picks the first valid)
        extra.append(
            pl.concat_list([_blank_to_null(pl.col(column)) for column in alternates])
            .list.drop_nulls()
            .alias("phone_alternates")
        )
    return rows.select(pl.col("row_number").cast(pl.Int64), *standard, custom_fields_json(custom), *extra)


def _standard_field(column: str) -> str | None:
    matches = _exact_matches(normalize_header(column), _alias_table({}))
    return min(matches)[2] if matches else None


def _rename_score(old: str, new: str) -> float:
    """How sure we are that `new` is `old` renamed: 100 when both are aliases of one field, else name similarity."""
    field_of_old = _standard_field(old)
    if field_of_old is not None and field_of_old == _standard_field(new):
        return EXACT_SCORE
    return fuzz.token_sort_ratio(normalize_header(old), normalize_header(new))


def column_drift(previous: list[str] | None, current: list[str]) -> ColumnDrift:
    """How a recurring file's header changed since the last upload (no drift on a campaign's first upload).
    A vanished and a new column count as a rename when both mean the same field or their names are close."""
    if previous is None:
        return ColumnDrift()
    added = [column for column in current if column not in previous]
    missing = [column for column in previous if column not in current]
    pairs = sorted(
        ((-_rename_score(old, new), i, j) for i, old in enumerate(missing) for j, new in enumerate(added)),
    )
    renamed: list[tuple[str, str]] = []
    for negative_score, i, j in pairs:
        old, new = missing[i], added[j]
        if -negative_score >= RENAME_THRESHOLD and all(old != o and new != n for o, n in renamed):
            renamed.append((old, new))
    return ColumnDrift(
        added=[column for column in added if all(column != new for _, new in renamed)],
        missing=[column for column in missing if all(column != old for old, _ in renamed)],
        renamed=renamed,
    )
