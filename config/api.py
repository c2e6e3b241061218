"""What every API module shares: validated input (bodies and query strings) in one error shape,
input fields whose bounds the database can hold, and pagination that refuses bad page numbers
(the OpenAPI side is `config.openapi`).

Input never reaches the database unchecked: PostgreSQL refuses NUL bytes in text and integers
past 64 bits with a DataError, which would otherwise surface as a server error."""

from __future__ import annotations

import re
from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from config.exceptions import InvalidInput

BIGINT_MAX = 2**63 - 1  # PostgreSQL bigint, the type of every id and offset
# C0 controls and DEL; tab, newline and carriage return are ordinary text.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
QUERY_INVALID = "The query string is invalid."
no_control_characters = RegexValidator(
    CONTROL_CHARACTERS, message="Control characters are not allowed.", inverse_match=True
)


def validated_input(
    serializer_class: type[serializers.Serializer],
    data: Any,
    *,
    message: str = "The request is invalid.",
) -> dict:
    """Validated data, or `InvalidInput` whose details are the serializer's field errors."""
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise InvalidInput(message, details=serializer.errors)
    return serializer.validated_data


def query_input(
    serializer_class: type[serializers.Serializer], request: Request, **defaults: Any
) -> dict:
    """The query string validated by `serializer_class` (repeated parameters reach list
    fields); `defaults` fill parameters the request leaves out."""
    data = request.query_params.copy()
    for name, value in defaults.items():
        data.setdefault(name, value)
    return validated_input(serializer_class, data, message=QUERY_INVALID)


class IdField(serializers.IntegerField):
    """A database id: a positive bigint."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", BIGINT_MAX)
        super().__init__(**kwargs)


class OffsetField(serializers.IntegerField):
    """How many items to skip: zero up to the largest bigint."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", BIGINT_MAX)
        kwargs.setdefault("default", 0)
        super().__init__(**kwargs)


class TextField(serializers.CharField):
    """Free text: bounded length (255 unless given), no control characters."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 255)
        super().__init__(**kwargs)
        self.validators.append(no_control_characters)


class Pagination(PageNumberPagination):
    """DRF's page numbers, with a page that is not a positive integer refused as bad input
    (400) and a page past the last one answered 404, as before."""

    max_page = BIGINT_MAX

    def get_page_number(self, request: Request, paginator) -> int | str:
        raw = request.query_params.get(self.page_query_param, 1)
        if raw in self.last_page_strings:
            return raw
        try:
            number = int(raw)
        except (TypeError, ValueError):
            number = 0
        if not 1 <= number <= self.max_page:
            raise InvalidInput(
                QUERY_INVALID,
                details={self.page_query_param: ["A page number is a positive integer."]},
            )
        return number

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"].update({"minimum": 1, "maximum": self.max_page})
        return parameters
