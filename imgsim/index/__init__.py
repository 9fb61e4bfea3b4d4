"""An index version on disk (manifest, items, vectors) and the arithmetic over its vectors.

Knows nothing of models: what a version holds and how to compare, calibrate and group its vectors.
"""
