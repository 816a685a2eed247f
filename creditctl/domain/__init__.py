"""The domain: credit accounts, balances, holds, decisions, keys. Pure Python, no I/O."""
