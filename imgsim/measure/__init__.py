"""How good the answers are: retrieval scores on labelled folders, and pictures of results and maps."""
