#!/bin/bash
# InfluxDB 2.7 init script (docker-compose.yml mounts this directory at /docker-entrypoint-initdb.d).
#
# The influxdb image runs it once, when it sets up an empty data volume (DOCKER_INFLUXDB_INIT_MODE=setup),
# right after it created the org, the bucket and the admin token; it must be executable and end in .sh.
# The image exports DOCKER_INFLUXDB_INIT_ORG_ID and DOCKER_INFLUXDB_INIT_BUCKET_ID and points the influx
# CLI at its setup instance (INFLUX_HOST, and INFLUX_CONFIGS_PATH holding the admin token).
#
# Jieshui and Grafana read with InfluxQL through the v1-compatibility API, which finds a bucket through
# a DBRP mapping: database ${JIESHUI_INFLUX_DATABASE}, retention policy autogen (the default) -> the
# bucket. The collector's bootstrap creates the same mapping when it is missing; creating it here makes
# Grafana's dashboards work before the collector's first write.
set -euo pipefail

database="${JIESHUI_INFLUX_DATABASE:-jieshui}"
bucket_id="${DOCKER_INFLUXDB_INIT_BUCKET_ID:-}"
if [ -z "${bucket_id}" ]; then
    bucket_id="$(influx bucket list --org "${DOCKER_INFLUXDB_INIT_ORG}" \
        --name "${DOCKER_INFLUXDB_INIT_BUCKET}" --hide-headers | cut -f 1)"
fi
if [ -z "${bucket_id}" ]; then
    echo "jieshui-dbrp: bucket ${DOCKER_INFLUXDB_INIT_BUCKET} not found" >&2
    exit 1
fi

influx v1 dbrp create --org "${DOCKER_INFLUXDB_INIT_ORG}" --db "${database}" --rp autogen \
    --bucket-id "${bucket_id}" --default
echo "jieshui-dbrp: InfluxQL database ${database} (policy autogen) -> bucket ${DOCKER_INFLUXDB_INIT_BUCKET}"
