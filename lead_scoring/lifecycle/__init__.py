"""The lead's lifecycle in the data we own: the score ledger and erasure."""
