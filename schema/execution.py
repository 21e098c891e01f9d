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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
)
from graphql.pyutils import Path, Undefined, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

# (serialize, python attribute name, nullable, is_list, items nullable)
_Plan = tuple[Callable[[Any], Any], str, bool, bool, bool]
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
    return (_fast(inner), definition.python_name, nullable, is_list, items_nullable)


def _fast(leaf: GraphQLScalarType | GraphQLEnumType) -> Callable[[Any], Any]:
    # The built-in scalars return a value of their own Python type unchanged
    # (an Int within 32 bits); skip their generic coercion in that case.
    serialize = leaf.serialize
    exact = {"String": str, "Boolean": bool, "ID": str}.get(leaf.name)
    if exact is not None:
        return lambda value: value if type(value) is exact else serialize(value)
    if leaf.name == "Int":
        return lambda value: (
            value
            if type(value) is int and -2147483648 <= value <= 2147483647
            else serialize(value)
        )
    return serialize


class PlainFieldExecutionContext(StrawberryGraphQLCoreExecutionContext):
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
                if plan is not None and len(plan) == 5
            ]
            entry = (grouped_field_set, plans, scalars)
            if len(scalars) != len(plans):
                entry = (grouped_field_set, plans, None)
            cache[id(grouped_field_set)] = entry
        return entry[1], entry[2]

    def execute_fields(  # type: ignore[override]
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

    @staticmethod
    def _all_scalars(scalars: list[tuple[str, _Plan]], source: Any) -> Any:
        """Every field of `source` at once, or Undefined for the field by
        field path (which then also words any error)."""
        serialized = PlainFieldExecutionContext._serialized
        result: dict[str, Any] = {}
        try:
            for response_name, plan in scalars:
                serialize, name, nullable, is_list, _items_nullable = plan
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
        serialize, name, nullable, is_list, items_nullable = plan
        value = getattr(source, name, Undefined)
        if value is Undefined or callable(value):
            return Undefined
        if value is None:
            # A null where the type forbids it is an error: graphql-core's
            # path reports it properly.
            return None if nullable else Undefined
        if not is_list:
            return serialize(value)
        items = []
        for item in value:
            if item is None:
                if not items_nullable:
                    return Undefined
                items.append(None)
            else:
                items.append(serialize(item))
        return items


def _in_order(order: list[str], plain: dict[str, Any], rest: dict[str, Any]) -> dict[str, Any]:
    merged = {**plain, **rest}
    return {name: merged[name] for name in order if name in merged}
