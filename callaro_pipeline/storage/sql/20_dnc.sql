-- Do-Not-Call lists (owned by callaro_pipeline/storage/suppression.py) and calling windows (callaro_pipeline/core/windows.py).
-- Append-only: a number leaves a list through a removal event or a newer national snapshot, never a DELETE.
CREATE TABLE IF NOT EXISTS dnc_loads (
    load_id VARCHAR NOT NULL,
    load_seq BIGINT NOT NULL,           -- order of events (timestamps can tie): 1 + the greatest so far
    source VARCHAR NOT NULL,            -- internal | national | call_outcome | campaign:<name>
    kind VARCHAR NOT NULL,              -- full | add | delete (files or removals) | manual (numbers typed in)
    file_name VARCHAR,
    stored_path VARCHAR,
    sha256 VARCHAR,
    snapshot_date DATE,
    rows_loaded BIGINT NOT NULL,        -- distinct numbers added (or removed, for kind delete)
    rows_rejected BIGINT NOT NULL,
    loaded_at TIMESTAMP NOT NULL
);
-- Numbers as E.164 digits without '+': +14155550134 is 14155550134.
-- Numbers typed in (`callaro dnc add`), each with its reason.
CREATE TABLE IF NOT EXISTS dnc_numbers (
    number BIGINT NOT NULL,
    source VARCHAR NOT NULL,
    load_id VARCHAR NOT NULL,
    reason VARCHAR,
    added_at TIMESTAMP NOT NULL
);
-- Numbers loaded from files (full snapshots and add change lists): only integers per number, since source,
-- load_id and time are the load's (dnc_loads) and a file's numbers carry no reason. A 100M-number national
-- list is written ~10x faster than with text columns repeated on every row.
CREATE TABLE IF NOT EXISTS dnc_file_numbers (
    load_seq BIGINT NOT NULL,           -- dnc_loads.load_seq
    number BIGINT NOT NULL
);
-- Every add event, typed in or from a file, in the shape of dnc_numbers.
CREATE OR REPLACE VIEW dnc_adds AS
SELECT number, source, load_id, reason, added_at FROM dnc_numbers
UNION ALL
SELECT f.number, l.source, l.load_id, NULL::VARCHAR AS reason, l.loaded_at AS added_at
FROM dnc_file_numbers f JOIN dnc_loads l USING (load_seq);
CREATE TABLE IF NOT EXISTS dnc_removals (
    number BIGINT NOT NULL,
    source VARCHAR NOT NULL,
    load_id VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    removed_at TIMESTAMP NOT NULL
);
-- Area codes a national full snapshot covers (registry files may come one per area code).
CREATE TABLE IF NOT EXISTS dnc_load_area_codes (
    load_id VARCHAR NOT NULL,
    area_code SMALLINT NOT NULL,
    rows_loaded BIGINT NOT NULL
);

-- For each national area code, the latest full snapshot covering it: events before it no longer count.
CREATE OR REPLACE VIEW dnc_national_base AS
SELECT a.area_code, max(l.load_seq) AS base_seq
FROM dnc_load_area_codes a JOIN dnc_loads l USING (load_id)
WHERE l.source = 'national' AND l.kind = 'full'
GROUP BY a.area_code;

-- Every add/remove event that still shapes a list. Other sources never drop numbers implicitly.
CREATE OR REPLACE VIEW dnc_events AS
WITH events AS (
    SELECT number, source, load_id, 'add' AS op, reason, added_at AS event_at FROM dnc_adds
    UNION ALL
    SELECT number, source, load_id, 'remove' AS op, reason, removed_at AS event_at FROM dnc_removals
)
SELECT e.number, e.source, e.load_id, e.op, e.reason, e.event_at, l.load_seq, l.snapshot_date
FROM events e
JOIN dnc_loads l USING (load_id)
LEFT JOIN dnc_national_base b ON e.source = 'national' AND b.area_code = (e.number // 10000000) % 1000
WHERE l.load_seq >= coalesce(b.base_seq, 0);

-- One row per (source, number) currently listed, with the event that listed it.
CREATE OR REPLACE VIEW dnc_active AS
SELECT number, source, arg_max(load_id, load_seq) AS load_id
FROM dnc_events
GROUP BY number, source
HAVING arg_max(op, load_seq) = 'add';

-- Analysts: one row per (source, number) ever listed, its latest listing, and whether it is listed now.
CREATE OR REPLACE VIEW dnc AS
WITH latest_add AS (
    SELECT n.number, n.source, n.reason, n.added_at, l.snapshot_date, n.load_id
    FROM dnc_adds n JOIN dnc_loads l USING (load_id)
    QUALIFY row_number() OVER (PARTITION BY n.source, n.number ORDER BY l.load_seq DESC) = 1
)
SELECT '+' || la.number::VARCHAR AS phone_e164, la.source, la.reason, la.added_at, la.snapshot_date,
       a.number IS NOT NULL AS active, la.load_id
FROM latest_add la
LEFT JOIN dnc_active a ON a.number = la.number AND a.source = la.source;

-- Calling windows: UTC intervals, next 14 days, per audience member (windows.call_windows), stored per build
-- and window key (audience_build_windows) since members share few combinations of zones and states.
CREATE OR REPLACE VIEW audience_call_windows AS
SELECT b.build_id, v.contact_id, w.opens_utc, w.closes_utc
FROM audience_builds b
JOIN audience_member_versions v
  ON v.campaign = b.campaign AND v.from_build <= CAST(regexp_extract(b.build_id, '([0-9]+)$', 1) AS BIGINT)
 AND (v.to_build IS NULL OR CAST(regexp_extract(b.build_id, '([0-9]+)$', 1) AS BIGINT) < v.to_build)
 AND v.outcome = 'member'
JOIN audience_build_windows w ON w.build_id = b.build_id AND w.window_key = v.window_key;
-- Current audience members (the latest build's) who may not be called any more, decided on the live tables at
-- read time, so a number listed, a consent revoked or a contact removed after the build (or while a rebuild was
-- killed) is out of every read path at once: on a DNC list that applies to the campaign (internal, call_outcome,
-- national, campaign:<name>: Campaign.dnc_sources), no longer in the contact book, or with consent "no" in it;
-- and, in a campaign whose latest build required consent, without consent yes + a real date not in the future + a
-- source in the book now (no_consent: consent is an audience criterion, the upload's contacts are in the book).
-- The DNC rule is dnc_active's, probed with the members' numbers only (a 100M-number list is not aggregated).
CREATE OR REPLACE VIEW audience_live_blocked AS
WITH members AS (
    SELECT campaign, contact_id, TRY_CAST(ltrim(phone_e164, '+') AS BIGINT) AS number
    FROM audience_member_versions WHERE to_build IS NULL AND outcome = 'member'
),
probe AS (SELECT DISTINCT number FROM members WHERE number IS NOT NULL),
events AS (
    SELECT n.number, n.source, n.load_id, 'add' AS op FROM dnc_numbers n SEMI JOIN probe USING (number)
    UNION ALL
    SELECT f.number, fl.source, fl.load_id, 'add' AS op
    FROM dnc_file_numbers f SEMI JOIN probe USING (number) JOIN dnc_loads fl USING (load_seq)
    UNION ALL
    SELECT r.number, r.source, r.load_id, 'remove' AS op FROM dnc_removals r SEMI JOIN probe USING (number)
),
listed AS (
    SELECT e.number, e.source
    FROM events e
    JOIN dnc_loads l USING (load_id)
    LEFT JOIN dnc_national_base b ON e.source = 'national' AND b.area_code = (e.number // 10000000) % 1000
    WHERE l.load_seq >= coalesce(b.base_seq, 0)
    GROUP BY e.number, e.source
    HAVING arg_max(e.op, l.load_seq) = 'add'
)
SELECT m.campaign, m.contact_id, 'dnc:' || d.source AS reason
FROM members m JOIN listed d ON d.number = m.number
 AND d.source IN ('internal', 'call_outcome', 'national', 'campaign:' || m.campaign)
UNION ALL
SELECT m.campaign, m.contact_id, 'not_in_contact_book' AS reason FROM members m ANTI JOIN contacts c USING (contact_id)
UNION ALL
SELECT m.campaign, m.contact_id, 'consent_revoked' AS reason
FROM members m JOIN contacts c USING (contact_id) WHERE c.consent = 'no'
UNION ALL
SELECT m.campaign, m.contact_id, 'no_consent' AS reason
FROM members m JOIN contacts c USING (contact_id)
WHERE m.campaign IN (
        SELECT campaign FROM (
            SELECT campaign, arg_max(detail, build_id) AS detail FROM audience_builds GROUP BY campaign
        ) WHERE coalesce(TRY_CAST(detail->'requires'->>'consent' AS BOOLEAN), false)
    )
  AND coalesce(lower(trim(c.consent)), '') <> 'no'
  AND NOT coalesce(
        lower(trim(c.consent)) = 'yes' AND TRY_CAST(c.consent_date AS DATE) <= current_date
        AND nullif(trim(c.consent_source), '') IS NOT NULL,
        false);

-- The other numbers (contacts.other_phones_e164) of current audience members that may be offered with them now,
-- in the contact's order: a number listed now on a list that applies to the campaign is never offered (nor one
-- that is not a readable E.164 number). Exports (campaign_audiences.other_phones_e164) read it.
CREATE OR REPLACE VIEW audience_live_other_phones AS
WITH members AS (
    SELECT DISTINCT campaign, contact_id FROM audience_member_versions WHERE to_build IS NULL AND outcome = 'member'
),
others AS (
    SELECT campaign, contact_id, phone, position, TRY_CAST(ltrim(phone, '+') AS BIGINT) AS number
    FROM (
        SELECT m.campaign, m.contact_id, unnest(c.other_phones_e164) AS phone,
               generate_subscripts(c.other_phones_e164, 1) AS position
        FROM members m JOIN contacts c USING (contact_id)
        WHERE len(c.other_phones_e164) > 0
    )
),
probe AS (SELECT DISTINCT number FROM others WHERE number IS NOT NULL),
events AS (
    SELECT n.number, n.source, n.load_id, 'add' AS op FROM dnc_numbers n SEMI JOIN probe USING (number)
    UNION ALL
    SELECT f.number, fl.source, fl.load_id, 'add' AS op
    FROM dnc_file_numbers f SEMI JOIN probe USING (number) JOIN dnc_loads fl USING (load_seq)
    UNION ALL
    SELECT r.number, r.source, r.load_id, 'remove' AS op FROM dnc_removals r SEMI JOIN probe USING (number)
),
listed AS (
    SELECT e.number, e.source
    FROM events e
    JOIN dnc_loads l USING (load_id)
    LEFT JOIN dnc_national_base b ON e.source = 'national' AND b.area_code = (e.number // 10000000) % 1000
    WHERE l.load_seq >= coalesce(b.base_seq, 0)
    GROUP BY e.number, e.source
    HAVING arg_max(e.op, l.load_seq) = 'add'
)
SELECT o.campaign, o.contact_id, list(o.phone ORDER BY o.position) AS other_phones_e164
FROM others o
WHERE o.number IS NOT NULL
  AND NOT EXISTS (
        SELECT 1 FROM listed d
        WHERE d.number = o.number AND d.source IN ('internal', 'call_outcome', 'national', 'campaign:' || o.campaign)
    )
GROUP BY o.campaign, o.contact_id;

-- Who in campaign X may be called at instant T, from its latest build (the greatest build_id, as in
-- campaign_audiences): SELECT * FROM callable_contacts('spring', now()). A TIMESTAMP without time zone is
-- read in the session's TimeZone setting. Live exclusions (audience_live_blocked) apply, and a campaign that
-- requires the national list is callable only before its snapshot turns 31 days old (the build's
-- national_not_after; its stored windows are cut there too).
CREATE OR REPLACE MACRO callable_contacts(campaign_name, ts) AS TABLE
SELECT m.*
FROM audience_members m
WHERE m.build_id = (SELECT max(build_id) FROM audience_builds WHERE campaign = campaign_name)
  AND EXISTS (
        SELECT 1 FROM audience_call_windows w
        WHERE w.build_id = m.build_id AND w.contact_id = m.contact_id
          AND w.opens_utc <= ts::TIMESTAMPTZ AND ts::TIMESTAMPTZ < w.closes_utc
    )
  AND NOT EXISTS (
        SELECT 1 FROM audience_live_blocked x WHERE x.campaign = m.campaign AND x.contact_id = m.contact_id
    )
  AND NOT EXISTS (
        SELECT 1 FROM audience_builds b
        WHERE b.build_id = m.build_id AND b.detail->>'national_not_after' IS NOT NULL
          AND ts::TIMESTAMPTZ >= CAST(b.detail->>'national_not_after' AS TIMESTAMPTZ)
    );
