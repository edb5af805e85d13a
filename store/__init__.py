"""Store: InfluxDB bootstrap, line-protocol writer (v1 and v2 APIs) and the InfluxQL reader."""
