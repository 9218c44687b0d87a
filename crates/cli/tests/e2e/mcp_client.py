"""Drives an MCP server with the official Python SDK (PyPI `mcp`, 2.x).

    python3 mcp_client.py http URL TOKEN PLAN_JSON
    python3 mcp_client.py stdio TOKEN PLAN_JSON COMMAND [ARG...]

PLAN_JSON is a list of steps: {"list_tools": true}, {"list_prompts": true},
{"prompt": NAME, "args": {...}}, {"list_resources": true}, {"read": URI}
{"subscribe": URI, "wait": SECS} (resources/subscribe, then the URIs of
the resources/updated notifications, once one came or SECS passed), or
{"call": NAME, "args": {...}}. Prints one JSON object: {"server": ...,
"steps": [...]}; a step that raised is {"raised": "..."}. A failure to
connect at all is {"error": "..."}. The e2e tests (mcp.rs) check the rest.
"""

import asyncio
import json
import sys
import warnings

import httpx2
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import Implementation, ResourceUpdatedNotification

# Every resources/updated notification the session surfaced, in order.
UPDATED = []


async def on_message(message):
    if isinstance(message, ResourceUpdatedNotification):
        UPDATED.append(message.params.uri)


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def run(session, plan):
    result = await session.initialize()
    out = {"server": dump(result.server_info), "protocol": result.protocol_version, "steps": []}
    for step in plan:
        try:
            if step.get("list_tools"):
                tools = await session.list_tools()
                out["steps"].append({"tools": [dump(t) for t in tools.tools]})
            elif step.get("list_prompts"):
                prompts = await session.list_prompts()
                out["steps"].append({"prompts": [dump(p) for p in prompts.prompts]})
            elif step.get("list_resources"):
                res = await session.list_resources()
                out["steps"].append({"resources": [dump(r) for r in res.resources]})
            elif "subscribe" in step:
                UPDATED.clear()
                with warnings.catch_warnings():
                    # Deprecated only for the 2026-07-28 revision (listen instead).
                    warnings.simplefilter("ignore")
                    await session.subscribe_resource(step["subscribe"])
                deadline = asyncio.get_running_loop().time() + step.get("wait", 3)
                while not UPDATED and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(0.05)
                out["steps"].append({"updated": list(UPDATED)})
            elif "read" in step:
                r = await session.read_resource(step["read"])
                out["steps"].append(dump(r))
            elif "prompt" in step:
                r = await session.get_prompt(step["prompt"], step.get("args"))
                out["steps"].append(dump(r))
            else:
                r = await session.call_tool(step["call"], step.get("args"))
                out["steps"].append(dump(r))
        except Exception as e:  # the test decides what an error means
            out["steps"].append({"raised": f"{type(e).__name__}: {e}"})
    return out


async def main():
    mode = sys.argv[1]
    info = Implementation(name="twinbay-e2e", version="9.9")
    if mode == "http":
        url, token, plan = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
        client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"},
                                        timeout=httpx2.Timeout(60.0))
        async with client:
            async with streamable_http_client(url, http_client=client) as (read, write):
                async with ClientSession(read, write, client_info=info, message_handler=on_message) as session:
                    return await run(session, plan)
    token, plan, command = sys.argv[2], json.loads(sys.argv[3]), sys.argv[4:]
    params = StdioServerParameters(command=command[0], args=command[1:],
                                   env={"TWINBAY_TOKEN": token, "PATH": "/usr/bin:/bin"})
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, client_info=info, message_handler=on_message) as session:
            return await run(session, plan)


if __name__ == "__main__":
    try:
        result = asyncio.run(asyncio.wait_for(main(), 120))
    except BaseException as e:  # noqa: BLE001 - reported, not hidden
        result = {"error": f"{type(e).__name__}: {e!r}"[:2000]}
    print(json.dumps(result))
