"""``/docs``: the REST API reference, rendered from the app's OpenAPI schema.

FastAPI's stock Swagger page loads its script from a CDN; SoundForge must work
offline, so the same schema (``/openapi.json``) is rendered here by our own
template, in the app's look.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from soundforge.web.deps import OptionalUser
from soundforge.web.pages import render

router = APIRouter(include_in_schema=False)

METHODS = ("get", "post", "put", "patch", "delete")


def _type_of(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(f'"{value}"' for value in schema["enum"])
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        names = [_type_of(s) for s in schema["anyOf"] if s.get("type") != "null"]
        nullable = any(s.get("type") == "null" for s in schema["anyOf"])
        return " | ".join(names) + (" | null" if nullable else "")
    if schema.get("type") == "array":
        return f"array of {_type_of(schema.get('items', {}))}"
    return str(schema.get("type", "object"))


def _fields(spec: dict[str, Any], schema: dict[str, Any]) -> tuple[str, list[dict[str, str]]]:
    """(model name, its fields) for a schema or a $ref to one."""
    name = ""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec.get("components", {}).get("schemas", {}).get(name, {})
    required = set(schema.get("required", []))
    fields = [
        {
            "name": key,
            "type": _type_of(value),
            "required": "yes" if key in required else "",
            "description": value.get("description", ""),
        }
        for key, value in schema.get("properties", {}).items()
    ]
    return name, fields


def _operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    sections: dict[str, list[dict[str, Any]]] = {}
    for path, item in spec.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            body = None
            content = op.get("requestBody", {}).get("content", {})
            for media, media_spec in content.items():
                name, fields = _fields(spec, media_spec.get("schema", {}))
                body = {"media": media, "name": name, "fields": fields}
                break
            responses = []
            for status, response in op.get("responses", {}).items():
                model = ""
                for media_spec in response.get("content", {}).values():
                    model = _type_of(media_spec.get("schema", {})) if media_spec else ""
                    break
                responses.append(
                    {"status": status, "description": response.get("description", ""),
                     "model": model}
                )
            schemes = spec.get("components", {}).get("securitySchemes", {})
            auth = [schemes.get(name, {}).get("scheme", name) for requirement in
                    op.get("security", []) for name in requirement]
            tag = (op.get("tags") or ["other"])[0]
            sections.setdefault(tag, []).append({
                "method": method.upper(),
                "path": path,
                "summary": op.get("summary", ""),
                "description": op.get("description", ""),
                "parameters": [
                    {
                        "name": p["name"],
                        "in": p["in"],
                        "type": _type_of(p.get("schema", {})),
                        "required": "yes" if p.get("required") else "",
                        "description": p.get("description", ""),
                    }
                    for p in op.get("parameters", [])
                ],
                "body": body,
                "responses": responses,
                "auth": ", ".join(f"{scheme} token or session" for scheme in auth),
                "anchor": f"{method}-{path}".replace("/", "-").replace("{", "").replace("}", ""),
            })
    tags = [t["name"] for t in spec.get("tags", [])]
    ordered = sorted(sections, key=lambda t: tags.index(t) if t in tags else len(tags))
    descriptions = {t["name"]: t.get("description", "") for t in spec.get("tags", [])}
    return [{"tag": t, "description": descriptions.get(t, ""), "operations": sections[t]}
            for t in ordered]


@router.get("/docs")
def api_docs(request: Request, user: OptionalUser) -> Response:
    spec = request.app.openapi()
    return render(
        request,
        "api_docs.html",
        {"spec": spec, "sections": _operations(spec), "base_url": str(request.base_url)[:-1]},
        user=user,
    )
