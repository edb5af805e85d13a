"""Grafana for Jieshui: the provisioning files (an InfluxQL datasource, three dashboards, alert rules)
under `provisioning/`, the code that generates the dashboards, and `jieshui grafana push`."""

from pathlib import Path

#: The directory Grafana is provisioned from (mounted at /etc/grafana/provisioning in compose).
PROVISIONING = Path(__file__).parent / "provisioning"
#: The datasource every dashboard panel and alert rule queries.
DATASOURCE_UID = "jieshui-influxql"
#: The folder dashboards and alert rules go into.
FOLDER_UID, FOLDER_TITLE = "jieshui", "节水 Jieshui"
