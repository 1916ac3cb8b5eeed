"""Automatic header matching: the aliases people use per field, exact and fuzzy matches, remembered mappings."""

from __future__ import annotations

from rapidfuzz import fuzz, process

from callaro_pipeline.core.campaign_settings import CustomField
from callaro_pipeline.core.mapping import (
    CUSTOM_PREFIX,
    EXACT_SCORE,
    Mapping,
    compact_header,
    is_custom_target,
    normalize_header,
)
from callaro_pipeline.core.schema import STANDARD_FIELDS

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


def alias_table(registry: dict[str, CustomField]) -> list[tuple[str, str, int]]:
    """(normalized alias, target field, rank within the field) for every standard field and custom field."""
    table = []
    for target, aliases in FIELD_ALIASES.items():
        names = (target.replace("_", " "), *aliases)
        table += [(normalize_header(alias), target, rank) for rank, alias in enumerate(names)]
    for name in registry:
        table.append((normalize_header(name), CUSTOM_PREFIX + name, 0))
    return table


def exact_alias_matches(header: str, table: list[tuple[str, str, int]]) -> list[tuple[float, int, str]]:
    return [
        (EXACT_SCORE, rank, target) for alias, target, rank in table if compact_header(alias) == compact_header(header)
    ]


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
    exact = exact_alias_matches(header, table)
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
        if target in STANDARD_FIELDS or (is_custom_target(target) and target[len(CUSTOM_PREFIX) :] in registry)
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
    table = [entry for entry in alias_table(registry) if entry[1] not in fields.values()]
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
    ranks = {alias: rank for alias, target, rank in alias_table({}) if target == "phone"}
    extra: list[tuple[int, int, str]] = []
    for position, column in enumerate(columns):
        alias = _compact_alias(column, ranks) if column not in fields and column not in primary else None
        if alias is not None:
            extra.append((ranks[alias], position, column))
    extra.sort()
    return [*primary, *(column for _, _, column in extra)] if primary else []


def _compact_alias(column: str, ranks: dict[str, int]) -> str | None:
    header = compact_header(normalize_header(column))
    return next((alias for alias in ranks if compact_header(alias) == header), None)
