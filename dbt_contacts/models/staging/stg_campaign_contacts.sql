-- Campaign membership: one row per (campaign, contact), keeping the first upload that added the contact.
select
    campaign,
    contact_id,
    arg_min(upload_id, added_at) as upload_id,
    min(added_at) as first_added_at,
    max(added_at) as last_added_at,
    count(*) as times_added
from {{ source('callaro', 'campaign_contacts') }}
group by campaign, contact_id
