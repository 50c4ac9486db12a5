"""The API reference page (/docs), written from the app's OpenAPI schema as plain HTML: every
endpoint with its fields, types, defaults and what they mean. Served by this server with its
own stylesheet — no script and nothing from a CDN, so it works offline."""

import json
from html import escape


def _type(schema: dict) -> str:
    """A field's type in words: integer, string, list of string, integer or null, …"""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    return schema.get("type", "any")


def _limits(schema: dict) -> str:
    words = {"minimum": "≥", "maximum": "≤", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    return " ".join(f"{sign} {schema[k]:g}" for k, sign in words.items() if k in schema)


def _fields(body: dict) -> str:
    """The request body's fields as a table (rows: name, type, default, meaning)."""
    props = body.get("properties", {})
    required = set(body.get("required", []))
    rows = []
    for name, schema in props.items():
        default = "required" if name in required else json.dumps(schema.get("default"))
        rows.append(
            f"<tr><td class=tok>{escape(name)}</td><td>{escape(_type(schema))} "
            f"{escape(_limits(schema))}</td><td class=tok>{escape(default)}</td>"
            f"<td>{escape(schema.get('description', ''))}</td></tr>"
        )
    head = "<tr><th>field</th><th>type</th><th>default</th><th>meaning</th></tr>"
    return f"<table class=fields><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _operation(path: str, method: str, op: dict, components: dict) -> str:
    anchor = f"{method}-{path.strip('/').replace('/', '-').replace('{', '').replace('}', '')}"
    parts = [
        f'<section class="card endpoint" id="{escape(anchor)}">',
        f"<h2><code>{method.upper()} {escape(path)}</code></h2>",
        f"<p>{escape(op.get('summary', ''))}</p>",
    ]
    params = [p["name"] for p in op.get("parameters", [])]
    if params:
        parts.append(f"<p class=note>in the path: {escape(', '.join(params))}</p>")
    ref = (
        op.get("requestBody", {})
        .get("content", {})
        .get("application/json", {})
        .get("schema", {})
        .get("$ref")
    )
    if ref:
        name = ref.rsplit("/", 1)[-1]
        parts += [f"<h3>JSON body ({escape(name)})</h3>", _fields(components[name])]
    codes = ", ".join(escape(c) for c in op.get("responses", {}))
    parts += [f"<p class=note>answers: {codes}</p>", "</section>"]
    return "".join(parts)


def page(schema: dict) -> str:
    """The whole reference page for an OpenAPI `schema` (the app's `openapi()`)."""
    info = schema.get("info", {})
    components = schema.get("components", {}).get("schemas", {})
    ops = [
        _operation(path, method, op, components)
        for path, methods in schema.get("paths", {}).items()
        for method, op in methods.items()
    ]
    title = escape(info.get("title", "API"))
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title} API</title>"
        '<link rel="stylesheet" href="/static/style.css"><link rel="icon" href="data:,">'
        "</head><body><header><h1>context<span>lens</span> API</h1></header><main>"
        f"<p class=note>{escape(info.get('description', ''))} Version "
        f"{escape(info.get('version', ''))}. Every request and answer is JSON; every error is "
        '<code>{"error": "one line: what is wrong; how to fix it"}</code>. The machine-readable '
        'schema is <a href="/openapi.json">/openapi.json</a>; the explorer is at '
        '<a href="/">/</a>.</p>'
        f"{''.join(ops)}</main></body></html>"
    )
