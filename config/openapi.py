"""How the OpenAPI schema names components and documents errors (drf-spectacular settings
point here). Kept apart from `config.api`: DRF's settings import that module while
drf-spectacular imports DRF's generic views."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class PlatformAutoSchema(AutoSchema):
    """Names the views' nested serializers after their view (`HolderListApi.Output` is the
    component `HolderListOutput`), so that no two operations share one component by accident."""

    def get_serializer_name(self, serializer: serializers.Serializer, direction: str) -> str:
        qualified = type(serializer).__qualname__.split(".")
        if len(qualified) == 1:
            return qualified[0]
        *outer, own = qualified
        return "".join(name.removesuffix("Api") for name in outer) + own


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "stable; clients may branch on it"},
                "message": {"type": "string"},
                "details": {
                    "description": "field errors of bad input, or facts about the error; "
                    "a server error carries its request_id here"
                },
            },
        }
    },
}
ERROR_RESPONSES = {
    "400": "The request is invalid (`details` names the fields).",
    "403": "Not permitted: sign in, or the action is not yours to take.",
    "404": "Not found, or not visible to you (both answer alike).",
    "500": "Server error; `details.request_id` identifies it in the logs.",
}
CONFLICT_RESPONSE = {"409": "Conflicts with the current state (for example, a repeated key)."}


def document_error_responses(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: every operation documents the one error shape
    (`config.exceptions`) for the statuses it can answer with."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            statuses = dict(ERROR_RESPONSES)
            if method != "get":
                statuses.update(CONFLICT_RESPONSE)
            for code, description in statuses.items():
                operation["responses"].setdefault(
                    code, {"description": description, "content": content}
                )
    return result
