"""A cheaper way to execute plain scalar fields.

A page of 500 students with 20 fields each is 10,000 field executions. For
each one graphql-core builds a ResolveInfo, calls strawberry's resolver
wrapper (which calls getattr), then completes the value through several
generic steps; that is about 40 ms of one core per page, more than the
database and the audit write together.

Most of those fields are plain: an attribute of a strawberry type, with no
resolver, no arguments, no permission classes or field extensions, and a
leaf type (scalar or enum, or a list of them). For those the result is fully
determined by `serialize(getattr(source, name))`, so this execution context
computes exactly that and leaves every other field (resolvers, objects,
arguments, `__typename`, nulls) to graphql-core's own path. The response is
the same; tests compare both paths on the same queries.

The objects between the root and those scalars (a connection's `edges`, each
edge's `node`) cost as much again: per edge, two field executions with their
ResolveInfo and strawberry's wrapper just to reach the attribute. A field
that is a non-null attribute of a non-null object type (or a non-null list of
them) with no resolver and no `is_type_of` check is executed here too, by
collecting its sub-fields once and executing them on the attribute's value.
Only non-null ones: an error below then propagates to graphql-core's nearest
nullable ancestor exactly as it would have, with its own path.

A page of students need not become objects at all. Its edges come as
`RowEdges`: the sealed cursors and the database records, whose columns are
the node's attributes (typed by the query, converted where a type needs it).
When an edge asks only for `cursor` and a `node` of plain scalar fields, the
results are built column by column from the records, with the same
serializers; anything else (a resolver such as `cciLevel`, `__typename`, a
null where the type forbids it) makes the edge objects and takes the paths
above, so the answer and its errors are the same either way.

When the edges ask for nothing but their node's plain scalar fields (no
cursor), the page's resolver can have PostgreSQL write each node's JSON
instead (`node_fields`, then `RowEdges(..., json_for=...)`): the fields come from
this context's own plans, so the SQL writes exactly the keys, in exactly the
order, that the records would have given, and the edges reach the response
as one `EdgesJson` that `dumps` splices in unparsed.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from types import FunctionType, NoneType
from typing import Any, cast
from weakref import WeakKeyDictionary

import orjson
from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
)
from graphql.pyutils import Path, Undefined, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

# (serialize, python attribute name, nullable, is_list, items nullable,
# the leaf type's name)
_Plan = tuple[Callable[[Any], Any], str, bool, bool, bool, str]
# (object type, python attribute name, is_list)
_ObjectPlan = tuple[GraphQLObjectType, str, bool]
_SetPlan = list[tuple[str, Any, _Plan | _ObjectPlan | None]]
_NOT_PLAIN: object = object()


def _unwrap(gql_type: Any) -> tuple[Any, bool]:
    if isinstance(gql_type, GraphQLNonNull):
        return gql_type.of_type, False
    return gql_type, True


def _plan_for(
    parent_type: GraphQLObjectType, field_name: str
) -> _Plan | _ObjectPlan | None:
    field = parent_type.fields.get(field_name)
    if field is None or field.args:
        return None
    definition = (field.extensions or {}).get("strawberry-definition")
    if (
        definition is None
        or definition.base_resolver is not None
        or definition.permission_classes
        or definition.extensions
    ):
        return None

    inner, nullable = _unwrap(field.type)
    is_list = isinstance(inner, GraphQLList)
    items_nullable = True
    if is_list:
        inner, items_nullable = _unwrap(inner.of_type)
    if isinstance(inner, GraphQLObjectType):
        if nullable or items_nullable and is_list or inner.is_type_of is not None:
            return None
        return (inner, definition.python_name, is_list)
    if not isinstance(inner, GraphQLScalarType | GraphQLEnumType):
        return None
    return (
        _fast(inner),
        definition.python_name,
        nullable,
        is_list,
        items_nullable,
        inner.name,
    )


_INT_MIN, _INT_MAX = -2147483648, 2147483647
# The Python type each fast serializer returns unchanged (see `_fast`).
_UNCHANGED: WeakKeyDictionary[Callable[[Any], Any], type] = WeakKeyDictionary()


def _fast(leaf: GraphQLScalarType | GraphQLEnumType) -> Callable[[Any], Any]:
    # The built-in scalars return a value of their own Python type unchanged
    # (an Int within 32 bits); skip their generic coercion in that case.
    serialize = leaf.serialize
    exact = {"String": str, "Boolean": bool, "ID": str}.get(leaf.name)
    fast: Callable[[Any], Any]
    if exact is not None:
        fast = lambda value: value if type(value) is exact else serialize(value)
        _UNCHANGED[fast] = exact
        return fast
    if leaf.name == "Int":
        fast = lambda value: (
            value
            if type(value) is int and _INT_MIN <= value <= _INT_MAX
            else serialize(value)
        )
        _UNCHANGED[fast] = int
        return fast
    return serialize


@dataclass(frozen=True, slots=True)
class NodeFields:
    """What each edge of a connection asks for, when that is only its node's
    plain scalar fields: the node's response name and, in the order of the
    answer, each field's response name, attribute and GraphQL type name."""

    node_key: str
    fields: tuple[tuple[str, str, str], ...]


class RowEdges(Sequence[Any]):
    """A connection's edges as the database returned them: each edge's
    cursor (made by `seal`, only if asked for) and its node's record. The
    node's attributes are the record's columns, passed through `conversions`
    where given; `make_edge` builds the same edge as an object, done only
    when the general path needs them.

    With `json_for` (from `node_fields`), each record's `node` is that
    node's JSON, written by the database for that selection, and the
    records hold no columns to make objects from: the execution context
    splices the JSON in as it is."""

    def __init__(
        self,
        seal: Callable[[], Sequence[str]],
        records: Sequence[Mapping[str, Any]],
        make_edge: Callable[[str, Mapping[str, Any]], Any],
        conversions: Mapping[str, Callable[[Any], Any]],
        *,
        json_for: NodeFields | None = None,
    ) -> None:
        self.records = records
        self.conversions = conversions
        self.json_for = json_for
        self._seal = seal
        self._make_edge = make_edge
        self._cursors: Sequence[str] | None = None
        self._edges: list[Any] | None = None

    def cursors(self) -> Sequence[str]:
        if self._cursors is None:
            self._cursors = self._seal()
        return self._cursors

    def edges(self) -> list[Any]:
        if self.json_for is not None:
            # node_fields planned this selection, so the execution context
            # never asks; reaching this is a bug, not a client's mistake.
            raise RuntimeError("the page was read as JSON for another selection")
        if self._edges is None:
            self._edges = [
                self._make_edge(cursor, record)
                for cursor, record in zip(self.cursors(), self.records, strict=True)
            ]
        return self._edges

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: Any) -> Any:
        return self.edges()[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.edges())


class EdgesJson(Sequence[Any]):
    """A list of edges already written as JSON by the database. `dumps`
    writes the text as it is; anything else that reads the result (tests,
    an extension) sees the parsed edges."""

    __slots__ = ("_parsed", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._parsed: list[Any] | None = None

    def parsed(self) -> list[Any]:
        if self._parsed is None:
            self._parsed = orjson.loads(self.text)
        return self._parsed

    def __len__(self) -> int:
        return len(self.parsed())

    def __getitem__(self, index: Any) -> Any:
        return self.parsed()[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EdgesJson):
            return self.parsed() == other.parsed()
        return isinstance(other, list) and self.parsed() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EdgesJson({len(self.text)} characters)"

    @staticmethod
    def of(node_key: str, nodes: Sequence[str]) -> EdgesJson:
        if not nodes:
            return EdgesJson("[]")
        # node_key is a GraphQL name: letters, digits and _, nothing to escape.
        opening = '{"' + node_key + '":'
        return EdgesJson("[" + opening + ("}," + opening).join(nodes) + "}]")


def _as_json(value: Any) -> Any:
    if isinstance(value, EdgesJson):
        return orjson.Fragment(value.text)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(data: Any) -> bytes:
    """A GraphQL result as JSON bytes (orjson), edges written by the
    database spliced in unparsed. Raises TypeError for what orjson refuses
    (an integer beyond 64 bits, a key that is not a string)."""
    return orjson.dumps(data, default=_as_json)


def _as_parsed(value: Any) -> Any:
    if isinstance(value, EdgesJson):
        return value.parsed()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps_slowly(data: Any) -> str:
    """The same with the standard library, for what orjson refuses."""
    return json.dumps(data, separators=(",", ":"), default=_as_parsed)


# The execution in progress in this task: resolvers plan their SQL with it
# (`node_fields`). A weak reference, so a finished execution is not kept.
_EXECUTION: ContextVar[Callable[[], Any]] = ContextVar(
    "soars_execution", default=lambda: None
)


def node_fields(info: Any) -> NodeFields | None:
    """For a connection field's resolver: the plain scalar fields every edge
    asks of its node, if that is all the edges ask for (no cursor, no
    resolver, no `__typename`, one `edges` and one `node`); None otherwise."""
    execution = _EXECUTION.get()()
    if not isinstance(execution, PlainFieldExecutionContext):
        return None
    return execution.node_fields_at(info.path)


# How an edge's field is answered from a RowEdges: its cursor, or its node's
# plain scalar fields (response name, plan) read from the record.
_EdgePlan = list[tuple[str, list[tuple[str, _Plan]] | None]]


class PlainFieldExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Object fields executed through graphql-core, by id of their path
        # (kept alive beside it): what `node_fields_at` plans from.
        self._object_fields: dict[int, tuple[Path, GraphQLObjectType, Any]] = {}
        _EXECUTION.set(weakref.ref(self))

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        if field_details_list[0].node.selection_set is not None:
            self._object_fields[id(path)] = (path, parent_type, field_details_list)
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def node_fields_at(self, path: Path) -> NodeFields | None:
        """`node_fields` for the connection field being resolved at `path`.
        Planned with the same collected fields and plans the execution of
        its edges then uses (both are memoized), so the two agree."""
        entry = self._object_fields.get(id(path))
        if entry is None or entry[0] is not path:
            return None
        _path, parent_type, details = entry
        field = parent_type.fields.get(details[0].node.name.value)
        connection_type = _unwrap(field.type)[0] if field is not None else None
        if not isinstance(connection_type, GraphQLObjectType):
            return None
        collected = self.collect_subfields(connection_type, details)
        if collected.new_defer_usages:
            return None
        found: NodeFields | None = None
        for edge_details in collected.grouped_field_set.values():
            name = edge_details[0].node.name.value
            if name != "edges":
                continue
            plan = self._plan(connection_type, name)
            if found is not None or plan is None or len(plan) != 3 or not plan[2]:
                return None  # edges asked for twice, or not a list of objects
            edge_type = cast(_ObjectPlan, plan)[0]
            edge_collected = self.collect_subfields(edge_type, edge_details)
            if edge_collected.new_defer_usages:
                return None
            found = _node_fields(
                self._edge_plan(edge_type, edge_collected.grouped_field_set)
            )
            if found is None:
                return None  # a cursor, or node asked for under two names
        return found

    def _plan(
        self, parent_type: GraphQLObjectType, field_name: str
    ) -> _Plan | _ObjectPlan | None:
        # Kept on the schema, not the class: an object plan holds that
        # schema's type, and a process may build several schemas (one per
        # app) whose types share names but are different objects; a type
        # of another schema would match none of this one's fragments.
        plans: dict[tuple[str, str], _Plan | _ObjectPlan | object]
        plans = self.schema.__dict__.setdefault("_soars_field_plans", {})
        key = (parent_type.name, field_name)
        plan = plans.get(key)
        if plan is None:
            plan = _plan_for(parent_type, field_name) or _NOT_PLAIN
            plans[key] = plan
        return None if plan is _NOT_PLAIN else plan  # type: ignore[return-value]

    def _set_plan(
        self, parent_type: GraphQLObjectType, grouped_field_set: Any
    ) -> tuple[_SetPlan, list[tuple[str, _Plan]] | None]:
        """The plan of each field, and the same as one list if all of them
        are plain scalars (a student: the whole object in one loop)."""
        # graphql-core collects the sub-fields of a list's items once and
        # reuses that object for every item; plan it once too. The entry keeps
        # the object alive, so its id cannot be reused within this execution.
        cache: dict[int, tuple[Any, _SetPlan, list[tuple[str, _Plan]] | None]]
        cache = self.__dict__.setdefault("_set_plans", {})
        entry = cache.get(id(grouped_field_set))
        if entry is None or entry[0] is not grouped_field_set:
            plans = [
                (name, details, self._plan(parent_type, details[0].node.name.value))
                for name, details in grouped_field_set.items()
            ]
            scalars = [
                (name, cast(_Plan, plan))
                for name, _details, plan in plans
                if plan is not None and len(plan) == 6
            ]
            entry = (grouped_field_set, plans, scalars)
            if len(scalars) != len(plans):
                entry = (grouped_field_set, plans, None)
            cache[id(grouped_field_set)] = entry
        return entry[1], entry[2]

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        set_plan, scalars = self._set_plan(parent_type, grouped_field_set)
        if scalars is not None:
            whole = self._all_scalars(scalars, source_value)
            if whole is not Undefined:
                return whole
        general = None
        plain: dict[str, Any] = {}
        pending: list[str] = []
        try:
            for response_name, field_details_list, plan in set_plan:
                value = Undefined
                if plan is not None and len(plan) == 3:
                    value = self._object_value(
                        cast(_ObjectPlan, plan),
                        source_value,
                        field_details_list,
                        Path(path, response_name, parent_type.name),
                    )
                    if value is not Undefined and self.is_awaitable(value):
                        pending.append(response_name)
                elif plan is not None:
                    value = self._plain_value(cast(_Plan, plan), source_value)
                if value is Undefined:
                    if general is None:
                        general = {}
                    general[response_name] = field_details_list
                else:
                    plain[response_name] = value

            rest: Any = {}
            if general is not None:
                rest = super().execute_fields(
                    parent_type, source_value, path, general, position_context
                )
        except Exception:
            if pending:
                self.settle_in_background([plain[name] for name in pending])
            raise
        if general is None and not pending:
            return plain
        order = list(grouped_field_set.keys())
        if pending or self.is_awaitable(rest):

            async def merged() -> dict[str, Any]:
                done = await rest if self.is_awaitable(rest) else rest
                if pending:
                    values = await gather_with_cancel(*(plain[n] for n in pending))
                    plain.update(zip(pending, values, strict=True))
                return _in_order(order, plain, done)

            return merged()
        return _in_order(order, plain, rest)

    def _object_value(
        self,
        plan: _ObjectPlan,
        source: Any,
        field_details_list: Any,
        path: Path,
    ) -> Any:
        object_type, name, is_list = plan
        value = getattr(source, name, Undefined)
        if value is Undefined or value is None or callable(value):
            return Undefined
        grouped, new_defer_usages, _forbidden = self.collect_subfields(
            object_type, field_details_list
        )
        if new_defer_usages:
            return Undefined
        if isinstance(value, RowEdges):
            if is_list:
                rows = self._edges_from_rows(object_type, grouped, value)
                if rows is not Undefined:
                    return rows
            value = value.edges()
        if not is_list:
            return self.execute_fields(object_type, value, path, grouped, None)
        # A null item is an error graphql-core words and locates itself.
        if not isinstance(value, list | tuple) or any(i is None for i in value):
            return Undefined
        items: list[Any] = []
        waiting = False
        try:
            for index, item in enumerate(value):
                done = self.execute_fields(
                    object_type, item, Path(path, index, None), grouped, None
                )
                waiting = waiting or self.is_awaitable(done)
                items.append(done)
        except Exception:
            if waiting:
                self.settle_in_background([i for i in items if self.is_awaitable(i)])
            raise
        if not waiting:
            return items

        async def gathered() -> list[Any]:
            awaited = [i for i in items if self.is_awaitable(i)]
            values = iter(await gather_with_cancel(*awaited))
            return [next(values) if self.is_awaitable(i) else i for i in items]

        return gathered()

    def _edge_plan(
        self, edge_type: GraphQLObjectType, grouped: Any
    ) -> _EdgePlan | None:
        """What each field of an edge asks, if only `cursor` and `node`s of
        plain scalar fields; None otherwise."""
        set_plan, _scalars = self._set_plan(edge_type, grouped)
        edge_plan: _EdgePlan = []
        for response_name, field_details_list, plan in set_plan:
            if plan is not None and len(plan) == 6 and plan[1] == "cursor":
                edge_plan.append((response_name, None))
                continue
            if plan is None or len(plan) != 3 or plan[1] != "node" or plan[2]:
                return None
            node_type = cast(_ObjectPlan, plan)[0]
            node_grouped, defer_usages, _forbidden = self.collect_subfields(
                node_type, field_details_list
            )
            if defer_usages:
                return None
            _node_plan, scalars = self._set_plan(node_type, node_grouped)
            if scalars is None:
                return None
            edge_plan.append((response_name, scalars))
        return edge_plan

    def _edges_from_rows(
        self, edge_type: GraphQLObjectType, grouped: Any, edges: RowEdges
    ) -> Any:
        """The edges' results straight from the records, or Undefined for
        the object path (which also words any error)."""
        edge_plan = self._edge_plan(edge_type, grouped)
        if edges.json_for is not None:
            if _node_fields(edge_plan) != edges.json_for:
                edges.edges()  # raises: planned for another selection
            nodes = [record["node"] for record in edges.records]
            return EdgesJson.of(edges.json_for.node_key, nodes)
        if edge_plan is None:
            return Undefined
        answers: list[list[Any]] = []
        for _response_name, scalars in edge_plan:
            if scalars is None:
                answers.append(list(edges.cursors()))
                continue
            nodes = _nodes_from_rows(scalars, edges.records, edges.conversions)
            if nodes is Undefined:
                return Undefined
            answers.append(nodes)
        names = [response_name for response_name, _scalars in edge_plan]
        if not names:  # every field skipped: one empty object per edge
            return [{} for _ in edges.records]
        return [
            dict(zip(names, edge, strict=True)) for edge in zip(*answers, strict=True)
        ]

    @staticmethod
    def _all_scalars(scalars: list[tuple[str, _Plan]], source: Any) -> Any:
        """Every field of `source` at once, or Undefined for the field by
        field path (which then also words any error)."""
        serialized = PlainFieldExecutionContext._serialized
        result: dict[str, Any] = {}
        try:
            for response_name, plan in scalars:
                serialize, name, nullable, is_list, _items_nullable, _leaf = plan
                value = getattr(source, name, Undefined)
                if is_list or value is Undefined or callable(value):
                    value = serialized(plan, source)
                    if value is Undefined:
                        return Undefined
                    result[response_name] = value
                elif value is None:
                    if not nullable:
                        return Undefined
                    result[response_name] = None
                else:
                    result[response_name] = serialize(value)
        except Exception:  # noqa: BLE001 - the general path reports it properly
            return Undefined
        return result

    @staticmethod
    def _plain_value(plan: _Plan, source: Any) -> Any:
        try:
            return PlainFieldExecutionContext._serialized(plan, source)
        except Exception:  # noqa: BLE001 - the general path reports it properly
            return Undefined

    @staticmethod
    def _serialized(plan: _Plan, source: Any) -> Any:
        value = getattr(source, plan[1], Undefined)
        if value is Undefined or callable(value):
            return Undefined
        return _serialized_value(plan, value)


def _node_fields(edge_plan: _EdgePlan | None) -> NodeFields | None:
    """What an edge asks, if only one node's plain scalar fields: each
    field's response name, attribute and GraphQL type (its leaf type's name,
    in brackets for a list, with ! where null is refused)."""
    if edge_plan is None or len(edge_plan) != 1:
        return None
    node_key, scalars = edge_plan[0]
    if scalars is None:  # the edge's cursor
        return None
    fields = []
    for response_name, plan in scalars:
        _serialize, name, nullable, is_list, items_nullable, leaf = plan
        type_name = leaf if not is_list else f"[{leaf}{'' if items_nullable else '!'}]"
        fields.append((response_name, name, type_name + ("" if nullable else "!")))
    return NodeFields(node_key, tuple(fields))


def _serialized_value(plan: _Plan, value: Any) -> Any:
    serialize, _name, nullable, is_list, items_nullable, _leaf = plan
    if value is None:
        # A null where the type forbids it is an error: graphql-core's
        # path reports it properly.
        return None if nullable else Undefined
    if not is_list:
        return serialize(value)
    items: list[Any] = []
    for item in value:
        if item is None:
            if not items_nullable:
                return Undefined
            items.append(None)
        else:
            items.append(serialize(item))
    return items


def _nodes_from_rows(
    scalars: list[tuple[str, _Plan]],
    records: Sequence[Mapping[str, Any]],
    conversions: Mapping[str, Callable[[Any], Any]],
) -> Any:
    """Each record's node as its plain scalar fields, built a column at a
    time; Undefined if a value is one the general path must word (a null
    where the type forbids it, a value its type refuses)."""
    columns = []
    try:
        for _response_name, plan in scalars:
            name = plan[1]
            values = list(map(itemgetter(name), records))
            convert = conversions.get(name)
            if convert is not None:
                values = [convert(value) for value in values]
            column = _serialized_column(plan, values)
            if column is Undefined:
                return Undefined
            columns.append(column)
    except Exception:  # noqa: BLE001 - the general path reports it properly
        return Undefined
    names = [response_name for response_name, _plan in scalars]
    if not names:  # every field skipped: one empty object per record
        return [{} for _ in records]
    return [dict(zip(names, node, strict=True)) for node in zip(*columns, strict=True)]


def _serialized_column(plan: _Plan, values: list[Any]) -> Any:
    serialize, _name, _nullable, is_list, _items_nullable, _leaf = plan
    if _unchanged(plan, values):
        return values
    if not is_list and None not in values:
        return list(map(serialize, values))
    column = [_serialized_value(plan, value) for value in values]
    return Undefined if any(value is Undefined for value in column) else column


def _unchanged(plan: _Plan, values: list[Any]) -> bool:
    """Whether the plan's serializer would return each value (each item of
    a list) as it is, nulls allowed where the type allows them: checked a
    column at a time, without calling it per value."""
    serialize, _name, nullable, is_list, items_nullable, _leaf = plan
    # Only `_fast`'s own functions are in the table (and can be weak keys).
    exact = _UNCHANGED.get(serialize) if isinstance(serialize, FunctionType) else None
    if exact is None:
        return False
    if is_list:
        if not set(map(type, values)) <= ({list, NoneType} if nullable else {list}):
            return False
        if nullable:
            values = [value for value in values if value is not None]
        values = list(chain.from_iterable(values))
        nullable = items_nullable
    if not set(map(type, values)) <= ({exact, NoneType} if nullable else {exact}):
        return False
    if exact is not int:
        return True
    numbers = [value for value in values if value is not None]
    return not numbers or (_INT_MIN <= min(numbers) and max(numbers) <= _INT_MAX)


def _in_order(
    order: list[str], plain: dict[str, Any], rest: dict[str, Any]
) -> dict[str, Any]:
    merged = {**plain, **rest}
    return {name: merged[name] for name in order if name in merged}
