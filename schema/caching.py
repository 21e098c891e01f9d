"""Validating each distinct query text once.

graphql-core validates every request's document against the schema with
about thirty rules; for a 500-student page that is a sixth of the service's
time per request, spent reaching the same verdict for the same text. Clients
send a handful of distinct queries, so a valid verdict is kept per query text
(bounded; the least recently used is dropped). Only valid verdicts are kept:
an invalid query is validated, and worded, afresh every time, and a client
sending many distinct invalid queries cannot fill the cache.

The query limits (`schema.limits`) are not cached: they depend on the
variables and run before this on every request.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

MAX_ENTRIES = 256

_valid: OrderedDict[tuple[int, str, tuple[object, ...]], None] = OrderedDict()


class CachedValidation(SchemaExtension):
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
