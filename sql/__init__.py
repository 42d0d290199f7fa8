"""The SQL migrations, shipped as package data of ctxsearch."""
