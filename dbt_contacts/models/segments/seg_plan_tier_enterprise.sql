-- Contacts on the enterprise plan, from the declared custom field `plan_tier` (custom_fields JSON).
select c.*
from {{ ref('stg_contacts') }} as c
where lower(trim(json_extract_string(c.custom_fields, '$.plan_tier'))) = 'enterprise'
