"""Use cases: each opens a unit of work, calls the domain, commits, and returns a result."""
