"""Evidence integrity: what makes a verdict worth signing.

- `digest`: a digest per device and Asia/Shanghai day of the readings InfluxDB holds, chained day to
  day, kept in an append-only SQL table, and recomputed to find days whose data changed afterwards;
- `signing`: Ed25519 signatures of verdict JSON and report PDFs with an evaluator's key, checked
  against the registered public keys;
- `meters`: the meter registry (serials, sizes, accuracy classes, calibration) and replacement events
  the totalizer logic uses instead of guessing.

Pure functions where possible; SQL through api.db's models.
"""
