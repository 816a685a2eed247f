"""Fakes that ship: an in-memory/file-backed balance provider and an in-memory unit of work."""
