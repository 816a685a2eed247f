"""Sinks for the audit chain's anchors: a JSON-lines file, an HTTPS webhook."""
