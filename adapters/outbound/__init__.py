"""Outbound HTTP safety shared by every adapter that calls configured URLs (Haier, webhooks)."""
