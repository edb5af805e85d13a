"""Jieshui (节水): telemetry and verification for Shanghai's water-saving residential communities.

This package holds what every stage of the data flow shares: the error hierarchy, settings, the site
inventory, the command line and the launcher for the local servers used by the demo and the tests.
"""

__version__ = "0.1.0"
