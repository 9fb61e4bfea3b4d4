"""The query path: one way from a picture (or an indexed id) to labelled results, for every caller."""
