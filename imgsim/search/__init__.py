"""Searching one version: Annoy opened memory-mapped with its reducer, and the search depth a build
tunes with its own model."""
