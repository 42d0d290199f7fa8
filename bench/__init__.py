"""`ctxsearch bench`: corpus generation, loading and measurement."""
