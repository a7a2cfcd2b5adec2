"""Pagination shared by every list endpoint, strict about its parameters."""

import re

from rest_framework import pagination, serializers

_WHOLE_NUMBER = re.compile(r"[0-9]+")


def query_value(request, name: str) -> str | None:
    """A query parameter given at most once: None when absent, a 400 when repeated (which one would count?)."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise serializers.ValidationError({name: ["Give this parameter once."]})
    return values[0] if values else None


def page_number(request, name: str, *, minimum: int) -> int | None:
    """A whole number of at least `minimum`, or None when absent.

    DRF's paginators fall back to their defaults on anything they cannot read (`limit=abc`, `offset=-5`,
    `limit=`): a client with a bug then silently gets another page than the one it asked for. Here such a
    value is a 400 in the API's error shape, and the schema says what is accepted.
    """
    value = query_value(request, name)
    if value is None:
        return None
    # Only ASCII digits: int() would also take " 7", "+7", "7_0" or other scripts' digits.
    if not _WHOLE_NUMBER.fullmatch(value) or int(value) < minimum:
        raise serializers.ValidationError({name: [f"Must be a whole number, at least {minimum}."]})
    return int(value)


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    default_limit = 50
    max_limit = 1000

    def get_limit(self, request):
        limit = page_number(request, self.limit_query_param, minimum=1)
        # A limit above the maximum is capped (the schema says so), as DRF does: the `next` link gives the rest.
        return self.default_limit if limit is None else min(limit, self.max_limit)

    def get_offset(self, request):
        return page_number(request, self.offset_query_param, minimum=0) or 0

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.limit_query_param,
                "required": False,
                "in": "query",
                "description": f"Number of results per page, default {self.default_limit}; values above "
                f"{self.max_limit} are capped at {self.max_limit}.",
                "schema": {"type": "integer", "minimum": 1},
            },
            {
                "name": self.offset_query_param,
                "required": False,
                "in": "query",
                "description": "The initial index from which to return the results.",
                "schema": {"type": "integer", "minimum": 0},
            },
        ]
