"""What every API module shares: validating input serializers into one error shape."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from config.exceptions import InvalidInput


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
