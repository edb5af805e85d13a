"""Verification: pure numpy checks of claimed savings against metered data (built in its own issue)."""
