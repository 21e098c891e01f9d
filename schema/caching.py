"""Parsing and validating each distinct query text once.

graphql-core validates every request's document against the schema with
about thirty rules; for a 500-student page that is a sixth of the service's
time per request, spent reaching the same verdict for the same text. Clients
send a handful of distinct queries, so a valid verdict is kept per query text
(bounded; the least recently used is dropped). Only valid verdicts are kept:
an invalid query is validated, and worded, afresh every time, and a client
sending many distinct invalid queries cannot fill the cache.

Parsing the same text again costs about a millisecond more, so the parsed
document of a short query is kept too: graphql-core never changes a document
once parsed. Only documents that parsed (a syntax error, or too many tokens,
is reported afresh every time), of texts short enough that the cache stays a
few megabytes whatever clients send.

The query limits (`schema.limits`) are not cached: they depend on the
variables and run before validation on every request.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from graphql import DocumentNode
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

MAX_ENTRIES = 256
MAX_DOCUMENTS = 64
# A parsed document takes about 80 bytes per character of its text.
MAX_CACHED_QUERY_CHARS = 2000

_valid: OrderedDict[tuple[int, str, tuple[object, ...]], None] = OrderedDict()
_documents: OrderedDict[tuple[str, tuple[object, ...]], DocumentNode] = OrderedDict()


class CachedValidation(SchemaExtension):
    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        query = context.query
        if not query or len(query) > MAX_CACHED_QUERY_CHARS:
            yield
            return
        # The options (the token limit) are part of the key: a document parsed
        # under one limit says nothing about another.
        key = (query, tuple(sorted(context.parse_options.items())))
        document = _documents.get(key)
        if document is not None:
            _documents.move_to_end(key)
            context.graphql_document = document  # strawberry then skips parsing
            yield
            return
        yield
        if context.graphql_document is not None:
            _documents[key] = context.graphql_document
            if len(_documents) > MAX_DOCUMENTS:
                _documents.popitem(last=False)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if (
            context.pre_execution_errors is None
            and document is not None
            and context.validation_rules
            and context.query is not None
        ):
            rules = tuple(context.validation_rules)
            key = (id(context.schema._schema), context.query, rules)
            try:
                _valid.move_to_end(key)
                context.pre_execution_errors = []
            except KeyError:
                errors = validate_document(context.schema._schema, document, rules)
                context.pre_execution_errors = errors
                if not errors:
                    _valid[key] = None
                    if len(_valid) > MAX_ENTRIES:
                        _valid.popitem(last=False)
        yield
