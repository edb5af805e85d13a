"""The collector's inputs: one small source per protocol, each the only importer of its library."""
