"""The offline build: walk a collection, embed what changed (here or on Ray), publish a version."""
