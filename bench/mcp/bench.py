"""Times get_host and list_hosts through MCP and through REST (see run.sh)."""

import asyncio
import os
import statistics
import sys
import time

import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

# The hub allows a token 120 MCP calls at once and 50 a second after that.
MCP_RATE = 45.0


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


# (read, p50 ms, p99 ms, n) of every report, for the summary table.
ROWS = []


def report(name, samples):
    ms = [x * 1000 for x in samples]
    ROWS.append((name.strip(), pct(ms, 50), pct(ms, 99), len(ms)))
    print(f"{name:<28} p50 {pct(ms, 50):7.2f} ms   p99 {pct(ms, 99):7.2f} ms   (n={len(ms)})", flush=True)


def summary(agents, calls):
    """The results as one Markdown table (for docs/mcp.md)."""
    width = max(len(r[0]) for r in ROWS)
    print()
    print(f"summary: {os.environ.get('BENCH_BIN', 'twinbay')}, {agents} hosts, {calls} calls per read")
    print(f"| {'read':<{width}} | p50 ms | p99 ms |    n |")
    print(f"|{'-' * (width + 2)}|-------:|-------:|-----:|")
    for name, p50, p99, n in ROWS:
        print(f"| {name:<{width}} | {p50:6.2f} | {p99:6.2f} | {n:4d} |")


async def paired(base, headers, node, agents, calls):
    """REST reads and the same reads as raw MCP JSON-RPC, taken in turns.

    Each pair alternates call by call at one pace, so both see the same
    fleet: a read made in a tight loop for half a second and another spread
    over ten seconds meet different load (the fleet reports in waves), and
    their tails are not comparable. The MCP calls are raw JSON-RPC posts on
    one keep-alive connection (httpx, one MCP session), as the REST reads
    are made: the hub and HTTP without the SDK's own work on the client
    (pydantic models, output-schema validation)."""
    accept = {"Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(base_url=base, headers=headers, timeout=30) as rest, \
            httpx2.AsyncClient(base_url=base, headers={**headers, **accept}, timeout=30) as raw:
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "bench-raw", "version": "1"}}}
        r = await raw.post("/mcp", json=init)
        assert r.status_code == 200, r.text
        session = {"mcp-session-id": r.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
        await raw.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)

        def tool(name, args):
            async def call(i):
                body = {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                        "params": {"name": name, "arguments": args}}
                r = await raw.post("/mcp", json=body, headers=session)
                assert r.status_code == 200 and '"isError":false' in r.text, r.text[:300]
            return call

        def get(path):
            async def call(i):
                r = await rest.get(path)
                assert r.status_code == 200, r.text[:300]
            return call

        pairs = [
            [("REST GET /nodes/{id}", get(f"/api/v1/nodes/{node}")),
             ("MCP raw get_host", tool("get_host", {"node": node}))],
            [(f"REST GET /nodes (all {agents})", get("/api/v1/nodes")),
             ("MCP raw list_hosts (100)", tool("list_hosts", {}))],
        ]
        for pair in pairs:
            samples = {name: [] for name, _ in pair}
            for i in range(calls):
                for name, call in pair:
                    t = time.perf_counter()
                    await call(i)
                    samples[name].append(time.perf_counter() - t)
                    # One pace for both, under the MCP token's rate limit.
                    await asyncio.sleep(max(0.0, 1 / MCP_RATE - samples[name][-1]))
            for name, _ in pair:
                report(name, samples[name])


async def main():
    base, token, admin, agents, calls = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(base_url=base, headers=headers, timeout=30) as rest:
        # A debug build on a busy machine enrolls a thousand hosts slowly.
        deadline = time.monotonic() + float(os.environ.get("CONNECT_SECS", "600"))
        while True:
            try:
                nodes = (await rest.get("/api/v1/nodes")).json()
            except httpx2.TransportError:
                # While a thousand agents connect, the hub may refuse a
                # connection beyond its per-address limit; try again.
                await asyncio.sleep(1)
                continue
            up = sum(1 for n in nodes if n["connected"])
            if up >= agents:
                break
            if time.monotonic() > deadline:
                # An overloaded machine keeps a few reconnecting: measure
                # anyway once every host is in the twin and nearly all are up.
                if len(nodes) >= agents and up >= 0.95 * agents:
                    break
                sys.exit(f"only {up} of {agents} hosts connected")
            await asyncio.sleep(1)
        print(f"{up} of {len(nodes)} hosts connected", flush=True)
        node = nodes[len(nodes) // 2]["id"]
    await paired(base, headers, node, agents, calls)
    client = create_mcp_http_client(headers=headers, timeout=httpx2.Timeout(30.0))
    async with client:
        async with streamable_http_client(f"{base}/mcp", http_client=client) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                for name, tool, args in [
                    ("MCP get_host", "get_host", {"node": node}),
                    ("MCP list_hosts (100)", "list_hosts", {}),
                    ("MCP list_hosts (capped)", "list_hosts", {"limit": 1000}),
                ]:
                    samples = []
                    for _ in range(calls):
                        t = time.perf_counter()
                        r = await session.call_tool(tool, args)
                        samples.append(time.perf_counter() - t)
                        assert not r.is_error, r
                        if tool == "list_hosts":
                            shown = len(r.structured_content["hosts"])
                        # Stay under the per-token rate limit.
                        await asyncio.sleep(max(0.0, 1 / MCP_RATE - samples[-1]))
                    if tool == "list_hosts":
                        name = f"{name[:-1]}: {shown})"
                    report(name, samples)


    # The hub's own time per call (the audit entry's duration_ms): what the
    # hub spends, apart from transport and the client's own work.
    async with httpx2.AsyncClient(base_url=base, timeout=30,
                                  headers={"Authorization": f"Bearer {admin}"}) as rest:
        entries = (await rest.get("/api/v1/audit?action=mcp.read&limit=1000")).json()
    for tool in ["get_host", "list_hosts"]:
        took = [float(e["detail"].split("duration_ms=")[1].split()[0]) / 1000
                for e in entries if f"tool={tool} " in e["detail"]]
        if took:
            report(f"  hub time in {tool}", took)
    summary(agents, calls)


asyncio.run(main())
