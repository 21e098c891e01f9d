"""Audit events: tags, the writer, the hash chain and its verifier."""
