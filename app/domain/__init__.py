"""Pure logic of the write path: documents, condense heuristics, payload codec, redaction."""
