"""The sensor that continues an upload's chain after its first stage was materialized on its own."""

from callaro_pipeline.defs import jobs
from callaro_pipeline.defs.automation.conditions import build_automation_sensor

upload_chain_automation_sensor = build_automation_sensor(jobs.UPLOAD_CHAIN - jobs.FIRST_STAGE)
