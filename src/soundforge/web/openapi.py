"""The OpenAPI schema as the app really answers.

FastAPI documents a request validation failure (422) with its own
``HTTPValidationError`` body; our error handler answers every error as
``{"error": {"code", "message"}}`` instead (``invalid_request``). This swaps
the former for the latter in every operation, so /docs and generated clients
see the body they will get.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from soundforge.web.schemas import ERROR_MEANINGS

ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
_FASTAPI_SHAPES = ("HTTPValidationError", "ValidationError")


def use_error_shape(app: FastAPI) -> None:
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # FastAPI caches it: the changes below happen once
        for item in schema.get("paths", {}).values():
            for op in item.values():
                answer = op.get("responses", {}).get("422")
                if answer is None:
                    continue
                body = answer.get("content", {}).get("application/json", {}).get("schema", {})
                if body.get("$ref", "").endswith("/HTTPValidationError"):
                    answer["description"] = ERROR_MEANINGS[422]
                    answer["content"] = {"application/json": {"schema": dict(ERROR_REF)}}
        components = schema.get("components", {}).get("schemas", {})
        for name in _FASTAPI_SHAPES:
            components.pop(name, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
