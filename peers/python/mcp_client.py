#!/usr/bin/env python3
"""Scripted MCP client built on the official Python SDK (`mcp` 2.x), for Portcullis's e2e tests.

Run it with the peers venv (scripts/install-peers):

    .peers/venv/bin/python peers/python/mcp_client.py --script STEPS.json -- COMMAND [ARGS...]
    .peers/venv/bin/python peers/python/mcp_client.py --script - --http URL [--header K:V ...] < STEPS.json

STEPS is a JSON list of steps, run in order after the initialize handshake:

    {"op": "list_tools"}
    {"op": "call_tool", "name": "...", "arguments": {...}}   ("progress": true records progress notifications)
    {"op": "list_resources"}
    {"op": "list_resource_templates"}
    {"op": "read_resource", "uri": "..."}
    {"op": "list_prompts"}
    {"op": "get_prompt", "name": "...", "arguments": {...}}
    {"op": "ping"}

Every step may carry "timeout" (seconds, default --timeout). The driver prints ONE JSON object on
stdout:

    {"server_info": {"name": ..., "version": ...}, "protocol_version": "...",
     "results": [ ...one per step... ], "elicitations": [ ...requests received... ],
     "sampling_requests": [...]}  (+ "shutdown_error": "..." if closing the session failed)

A step's result is the SDK's result dumped in wire form (camelCase, as JSON), except call_tool,
which is {"is_error": bool, "content": [...wire content blocks...], "structured": ... or null}.
A step that raised is {"exception": "Type: message"} plus, for a JSON-RPC error,
"error": {"code": int, "message": str, "data": ...}; the driver carries on with the next step.

Exit status: 0 the script ran (whatever the steps returned); 1 could not connect / initialize
(stdout then holds {"connect_error": "..."}); 2 usage error (bad arguments or script).

The child's environment is the driver's own environment, unfiltered (the SDK's default passes
only HOME/PATH/...), so PORTCULLIS_* variables reach the gateway. The child's stderr goes to the
driver's stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Any

import anyio
import mcp.types as types
from mcp.client.session import ClientRequestContext, ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

DEFAULT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 30.0


def usage_error(message: str) -> None:
    print(f"mcp_client: {message}", file=sys.stderr)
    sys.exit(2)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mcp_client.py",
        description="Scripted MCP client (official Python SDK) for Portcullis e2e tests.",
    )
    parser.add_argument("--script", required=True, help="JSON list of steps; `-` reads stdin")
    parser.add_argument("--http", metavar="URL", help="use Streamable HTTP at URL instead of stdio")
    parser.add_argument(
        "--header", action="append", default=[], metavar="K:V", help="HTTP header (repeatable; --http only)"
    )
    parser.add_argument(
        "--elicit",
        choices=["accept", "decline", "cancel"],
        help="declare the elicitation capability and answer every elicitation/create this way",
    )
    parser.add_argument(
        "--elicit-content", metavar="JSON", help="content object sent with --elicit accept (default {})"
    )
    parser.add_argument(
        "--sample-text",
        metavar="TEXT",
        help="declare the sampling capability and answer sampling/createMessage with this text",
    )
    parser.add_argument(
        "--root", action="append", default=[], metavar="URI", help="declare roots and answer roots/list (repeatable)"
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help=f"per-request timeout, seconds (default {DEFAULT_TIMEOUT:g})"
    )
    parser.add_argument("--cwd", help="working directory for the stdio child")
    parser.add_argument("command", nargs="*", help="after `--`: the stdio server command and its arguments")
    args = parser.parse_args(argv)
    if args.http and args.command:
        usage_error("give either --http URL or `-- COMMAND`, not both")
    if not args.http and not args.command:
        usage_error("missing `-- COMMAND [ARGS...]` (or --http URL)")
    if args.header and not args.http:
        usage_error("--header needs --http")
    args.headers = {}
    for h in args.header:
        key, sep, value = h.partition(":")
        if not sep or not key.strip():
            usage_error(f"--header `{h}` is not K:V")
        args.headers[key.strip()] = value.strip()
    if args.elicit_content is not None and args.elicit != "accept":
        usage_error("--elicit-content needs --elicit accept")
    return args


def load_script(path: str) -> list[dict[str, Any]]:
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
        steps = json.loads(text)
    except (OSError, ValueError) as e:
        usage_error(f"cannot read script `{path}`: {e}")
    if not isinstance(steps, list) or not all(isinstance(s, dict) and isinstance(s.get("op"), str) for s in steps):
        usage_error("the script must be a JSON list of objects, each with a string `op`")
    return steps


def dump(model: Any) -> Any:
    """A pydantic model in wire form (camelCase aliases, JSON types, no nulls)."""
    if model is None:
        return None
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def describe(exc: BaseException) -> dict[str, Any]:
    # anyio task groups wrap errors; report the innermost meaningful one.
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    out: dict[str, Any] = {"exception": f"{type(exc).__name__}: {exc}"}
    if isinstance(exc, MCPError):
        out["error"] = {"code": exc.code, "message": exc.message, "data": exc.data}
    return out


class Recorder:
    """Client-side callbacks: answer server-to-client requests as configured, and record them."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.elicitations: list[Any] = []
        self.sampling_requests: list[Any] = []
        self.elicit_content: dict[str, Any] | None = None
        if args.elicit_content is not None:
            try:
                self.elicit_content = json.loads(args.elicit_content)
            except ValueError as e:
                usage_error(f"--elicit-content is not JSON: {e}")
            if not isinstance(self.elicit_content, dict):
                usage_error("--elicit-content must be a JSON object")

    async def elicit(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.elicitations.append(dump(params))
        action = self.args.elicit
        if action == "accept":
            return types.ElicitResult(action="accept", content=self.elicit_content or {})
        return types.ElicitResult(action=action)

    async def sample(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.sampling_requests.append(dump(params))
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=self.args.sample_text),
            model="portcullis-test-driver",
            stop_reason="endTurn",
        )

    async def roots(self, context: ClientRequestContext) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri=uri) for uri in self.args.root])

    def session_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "client_info": types.Implementation(name="portcullis-test-driver", version="0.1.0"),
        }
        if self.args.elicit:
            kwargs["elicitation_callback"] = self.elicit
        if self.args.sample_text is not None:
            kwargs["sampling_callback"] = self.sample
        if self.args.root:
            kwargs["list_roots_callback"] = self.roots
        return kwargs


def call_result(result: Any) -> dict[str, Any]:
    if isinstance(result, types.CallToolResult):
        return {
            "is_error": bool(result.is_error),
            "content": [dump(block) for block in result.content],
            "structured": result.structured_content,
        }
    return {"unexpected_result": dump(result)}


async def run_step(session: ClientSession, step: dict[str, Any], default_timeout: float) -> Any:
    op = step["op"]
    timeout = float(step.get("timeout", default_timeout))
    with anyio.fail_after(timeout):
        if op == "list_tools":
            return dump(await session.list_tools())
        if op == "call_tool":
            progress: list[Any] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                progress.append({"progress": value, "total": total, "message": message})

            result = call_result(
                await session.call_tool(
                    step["name"],
                    step.get("arguments"),
                    read_timeout_seconds=timeout,
                    progress_callback=on_progress if step.get("progress") else None,
                )
            )
            if step.get("progress"):
                result["progress"] = progress
            return result
        if op == "list_resources":
            return dump(await session.list_resources())
        if op == "list_resource_templates":
            return dump(await session.list_resource_templates())
        if op == "read_resource":
            return dump(await session.read_resource(step["uri"]))
        if op == "list_prompts":
            return dump(await session.list_prompts())
        if op == "get_prompt":
            return dump(await session.get_prompt(step["name"], step.get("arguments")))
        if op == "ping":
            await session.send_ping()
            return {}
    raise ValueError(f"unknown op `{op}`")


async def run_session(
    read: Any, write: Any, args: argparse.Namespace, steps: list[dict[str, Any]], rec: Recorder, output: dict[str, Any]
) -> None:
    async with ClientSession(read, write, **rec.session_kwargs()) as session:
        with anyio.fail_after(CONNECT_TIMEOUT):
            init = await session.initialize()
        # From here on the script "runs": step failures are results, not a connect failure.
        output["server_info"] = dump(init.server_info)
        output["protocol_version"] = init.protocol_version
        output["results"] = []
        for step in steps:
            try:
                output["results"].append(await run_step(session, step, args.timeout))
            except Exception as e:  # noqa: BLE001 - every step failure is reported, not fatal
                output["results"].append(describe(e))


async def main_async(args: argparse.Namespace, steps: list[dict[str, Any]], rec: Recorder, output: dict[str, Any]) -> None:
    if args.http:
        from mcp.client.streamable_http import streamable_http_client

        headers = args.headers
        try:
            from mcp.shared._httpx_utils import create_mcp_http_client

            http_client = create_mcp_http_client(headers=headers)
        except ImportError:  # private helper moved; plain client with the same headers
            import httpx2

            http_client = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0))
        async with http_client, streamable_http_client(args.http, http_client=http_client) as (read, write):
            await run_session(read, write, args, steps, rec, output)
    else:
        params = StdioServerParameters(
            command=args.command[0], args=args.command[1:], env=dict(os.environ), cwd=args.cwd
        )
        async with stdio_client(params, errlog=sys.stderr) as (read, write):
            await run_session(read, write, args, steps, rec, output)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    steps = load_script(args.script)
    rec = Recorder(args)
    output: dict[str, Any] = {}
    try:
        anyio.run(main_async, args, steps, rec, output)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as e:  # noqa: BLE001 - reported below
        detail = describe(e)["exception"]
        if os.environ.get("MCP_CLIENT_DEBUG"):
            traceback.print_exc()
        if "results" not in output:
            print(f"mcp_client: could not connect: {detail}", file=sys.stderr)
            print(json.dumps({"connect_error": detail}))
            return 1
        # The script ran; the failure came after the steps or while the session shut down.
        output["shutdown_error"] = detail
        # Keep one result per step: steps the failure cut off are reported as not run.
        while len(output["results"]) < len(steps):
            output["results"].append({"exception": f"not run: {detail}"})
    output["elicitations"] = rec.elicitations
    output["sampling_requests"] = rec.sampling_requests
    print(json.dumps(output))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
