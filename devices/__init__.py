"""Device profiles: declarative descriptions of each meter and controller model Jieshui reads.

A profile is a data file in `devices/profiles/`; this package loads and validates them. The collector
decodes with them, the simulators encode with them, docs/devices.md is generated from them.
"""
