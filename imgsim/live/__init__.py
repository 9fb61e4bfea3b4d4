"""Additions and deletions while the service runs: the exact delta in front of Annoy and the
durable stores behind it (SQLite on one machine, PostgreSQL for several replicas)."""
