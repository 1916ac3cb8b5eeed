-- Per-upload stages (rows replaced per upload_id in one transaction) and the contact book.
CREATE TABLE IF NOT EXISTS mapped_contacts (
    upload_id VARCHAR NOT NULL,
    row_number BIGINT NOT NULL,
    external_id VARCHAR, first_name VARCHAR, last_name VARCHAR, full_name VARCHAR, company VARCHAR,
    phone VARCHAR, email VARCHAR, timezone VARCHAR, country VARCHAR, state VARCHAR, postal_code VARCHAR,
    lead_source VARCHAR, consent VARCHAR, consent_date VARCHAR, consent_source VARCHAR,
    custom_fields JSON,
    phone_alternates VARCHAR[]
);
CREATE TABLE IF NOT EXISTS validated_contacts (
    upload_id VARCHAR NOT NULL,
    row_number BIGINT NOT NULL,
    phone_e164 VARCHAR NOT NULL,
    phone_extension VARCHAR,
    phone_type VARCHAR,
    phone_region VARCHAR,
    phone_state VARCHAR,
    external_id VARCHAR, first_name VARCHAR, last_name VARCHAR, full_name VARCHAR, company VARCHAR,
    email VARCHAR, country VARCHAR, state VARCHAR, postal_code VARCHAR, lead_source VARCHAR,
    consent VARCHAR, consent_date VARCHAR, consent_source VARCHAR,
    timezone VARCHAR,
    timezone_candidates VARCHAR[],
    timezone_source VARCHAR NOT NULL,
    custom_fields JSON,
    other_phones_e164 VARCHAR[]
);
-- Several phone columns (mapping `phone: [A, B]`): the raw values after the first, and the valid numbers that
-- are not the phone. Suppression must scrub other_phones_e164 like phone_e164. Added in place for older files.
ALTER TABLE mapped_contacts ADD COLUMN IF NOT EXISTS phone_alternates VARCHAR[];
ALTER TABLE validated_contacts ADD COLUMN IF NOT EXISTS other_phones_e164 VARCHAR[];
CREATE TABLE IF NOT EXISTS suppressed_contacts (
    upload_id VARCHAR NOT NULL,
    row_number BIGINT NOT NULL,
    phone_e164 VARCHAR NOT NULL,
    reasons VARCHAR[] NOT NULL,       -- e.g. dnc:internal, dnc:national, consent_revoked (no_consent: audiences)
    checked_at TIMESTAMP NOT NULL
);
-- One row per person (key: E.164 phone plus extension: two extensions of one switchboard number are two people);
-- contact_id is derived from the key (the phone alone when there is no extension: contact_book.contact_id_sql) so
-- call results tie back. other_phones_e164: the contact's other numbers not DNC-listed when merged (exports
-- filter them live again). The key is kept by the one writer, contact_book.merge_upload_into_book (one row per
-- phone and extension per upload,
-- inserted only when absent), not by PRIMARY KEY / UNIQUE: DuckDB's ART indexes on millions of text keys
-- made each million-row upload tens of seconds slower, grew with the book, held GBs in memory, and turned
-- an UPDATE of existing contacts into minutes (measured: 838k rows, 273 s with the indexes, 8 s without).
CREATE TABLE IF NOT EXISTS contacts (
    contact_id VARCHAR NOT NULL,
    phone_e164 VARCHAR NOT NULL,
    phone_extension VARCHAR, phone_type VARCHAR, phone_region VARCHAR, phone_state VARCHAR,
    first_name VARCHAR, last_name VARCHAR, full_name VARCHAR, company VARCHAR, email VARCHAR,
    country VARCHAR, state VARCHAR, postal_code VARCHAR,
    timezone VARCHAR, timezone_candidates VARCHAR[], timezone_source VARCHAR,
    external_id VARCHAR, lead_source VARCHAR,
    consent VARCHAR, consent_date VARCHAR, consent_source VARCHAR,
    custom_fields JSON,
    first_upload_id VARCHAR, last_upload_id VARCHAR, source_row BIGINT,
    created_at TIMESTAMP, updated_at TIMESTAMP,
    other_phones_e164 VARCHAR[]
);
ALTER TABLE contacts ADD COLUMN IF NOT EXISTS other_phones_e164 VARCHAR[];
CREATE TABLE IF NOT EXISTS campaign_contacts (
    campaign VARCHAR NOT NULL,
    contact_id VARCHAR NOT NULL,
    upload_id VARCHAR NOT NULL,
    row_number BIGINT,
    added_at TIMESTAMP NOT NULL
);
-- Audience builds are frozen: every build keeps its members; campaign_audiences shows the latest build.
-- A build's number is the zero-padded sequence that ends its id (spring-000042 is build 42 of spring).
CREATE TABLE IF NOT EXISTS audience_builds (
    build_id VARCHAR NOT NULL,        -- unique: campaign + build number
    campaign VARCHAR NOT NULL,
    built_at TIMESTAMP NOT NULL,
    members BIGINT NOT NULL,
    missing_required BIGINT NOT NULL,
    detail JSON                       -- counts, and dnc_snapshot: the DNC loads every member was checked against
);
-- How each candidate of a campaign came out of its builds, stored as versions: one row per contact per run
-- of consecutive builds with the same outcome and values, from build `from_build` until `to_build`
-- (exclusive; NULL while current). A build writes rows only for the contacts whose outcome or values it
-- changes, so an import's build costs what the upload changed, not the size of the campaign
-- (audiences.build_audience). Read the members of any build through the view audience_members.
CREATE TABLE IF NOT EXISTS audience_member_versions (
    campaign VARCHAR NOT NULL,
    from_build BIGINT NOT NULL,
    to_build BIGINT,
    contact_id VARCHAR NOT NULL,
    outcome VARCHAR NOT NULL,         -- member | suppressed | missing_required
    reasons VARCHAR[],                -- suppressed: dnc:<source>, no_consent; missing_required: the variables
    phone_e164 VARCHAR NOT NULL,
    timezone VARCHAR,
    timezone_candidates VARCHAR[],
    timezone_source VARCHAR,
    external_id VARCHAR,
    agent_variables JSON,
    consent_evidence JSON,
    window_key VARCHAR                -- members: their zones and states, the key of their calling windows
);
-- The window keys a campaign's members have had (their calling windows are computed for every build).
CREATE TABLE IF NOT EXISTS audience_window_keys (
    campaign VARCHAR NOT NULL,
    window_key VARCHAR NOT NULL
);
-- Each build's open calling intervals (UTC, next 14 days) per window key (windows.call_windows).
CREATE TABLE IF NOT EXISTS audience_build_windows (
    build_id VARCHAR NOT NULL,
    window_key VARCHAR NOT NULL,
    opens_utc TIMESTAMPTZ NOT NULL,
    closes_utc TIMESTAMPTZ NOT NULL   -- exclusive
);
-- Every build with its members: the candidates it found callable (a member with no open calling interval in
-- the build's 14 days is left out as not callable), with the next call start of its build.
CREATE OR REPLACE VIEW audience_members AS
WITH builds AS (
    SELECT build_id, campaign, CAST(regexp_extract(build_id, '([0-9]+)$', 1) AS BIGINT) AS build_number,
           detail->>'dnc_snapshot' AS dnc_snapshot
    FROM audience_builds
),
starts AS (
    SELECT build_id, window_key, timezone('UTC', min(opens_utc)) AS next_call_start_utc
    FROM audience_build_windows GROUP BY build_id, window_key
)
SELECT b.build_id, v.campaign, v.contact_id, v.phone_e164, v.timezone, v.timezone_candidates, v.timezone_source,
       v.external_id, s.next_call_start_utc, v.agent_variables, b.dnc_snapshot::JSON AS dnc_snapshot,
       v.consent_evidence
FROM builds b
JOIN audience_member_versions v
  ON v.campaign = b.campaign AND v.from_build <= b.build_number
 AND (v.to_build IS NULL OR b.build_number < v.to_build) AND v.outcome = 'member'
JOIN starts s ON s.build_id = b.build_id AND s.window_key = v.window_key;
