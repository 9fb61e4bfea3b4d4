"""Pictures in and out: decoding uploads and files safely, and the edits a copy of a photo goes through."""
