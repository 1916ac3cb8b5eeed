-- The current audience of each campaign: the members of its latest build still callable now. Build ids end in
-- a zero-padded sequence per campaign, so the latest build is the greatest id (clock changes cannot reorder builds).
CREATE OR REPLACE VIEW campaign_audiences AS
WITH latest AS (
    SELECT campaign, max(build_id) AS build_id FROM audience_builds GROUP BY campaign
)
SELECT
    m.campaign, m.contact_id, m.phone_e164, m.timezone, m.timezone_candidates, m.timezone_source,
    m.external_id, m.next_call_start_utc, m.agent_variables, m.dnc_snapshot, m.consent_evidence,
    m.build_id, b.built_at,
    -- the member's other numbers not listed now (never a listed one: audience_live_other_phones)
    o.other_phones_e164
FROM audience_members AS m
JOIN latest USING (campaign, build_id)
JOIN audience_builds AS b USING (build_id)
LEFT JOIN audience_live_other_phones AS o USING (campaign, contact_id)
-- decided live: listed now, consent revoked, or no longer in the contact book (see audience_live_blocked)
ANTI JOIN audience_live_blocked AS x USING (campaign, contact_id)
-- a campaign that requires the national list: nobody once the snapshot it was checked against is 31 days old
WHERE b.detail->>'national_not_after' IS NULL OR now() < CAST(b.detail->>'national_not_after' AS TIMESTAMPTZ);
