"""Copies of one picture in a collection: verified pairs, the groups they make, finding them."""
