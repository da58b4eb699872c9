"""Live streams through the gateway: NDJSON for curl, SSE for browsers."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devmesh.mesh import Mesh

pytestmark = pytest.mark.slow

CREATE = {"cpus": 1, "memory": 256, "disk": [{"size": 1}]}


def own_results(lines: Iterator[str], uuid: str, until: str) -> list[dict[str, Any]]:
    """The NDJSON results about instance `uuid`, skipping others, up to the
    first that shows state `until`."""
    found = []
    for line in lines:
        if line.strip():
            result = json.loads(line)["result"]
            if result["instance"]["uuid"] == uuid:
                found.append(result)
                if result["instance"]["state"] == until:
                    break
    return found


def sse_events(lines: Iterator[str], wanted: int) -> list[tuple[str, dict[str, Any]]]:
    """The next `wanted` SSE events as (event name, decoded data)."""
    events: list[tuple[str, dict[str, Any]]] = []
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((name, json.loads(line.removeprefix("data: "))))
            if len(events) == wanted:
                break
    return events


def test_watch_all_streams_changes_as_ndjson(rest: httpx.Client) -> None:
    with rest.stream("GET", "/instances:watch", timeout=30) as watch:
        assert watch.status_code == 200
        assert watch.headers["content-type"].startswith("application/x-ndjson")
        lines = watch.iter_lines()
        uuid = rest.post("/instances", json={"name": "streamed", **CREATE}).json()["uuid"]
        seen = own_results(lines, uuid, "created")
        rest.delete(f"/instances/{uuid}")
        seen += own_results(lines, uuid, "deleted")
    # Every state the instance went through, in order: the node agent's
    # walk, the api's delete-wait, the node agent's record of its teardown,
    # and the api's deleted. A state may show more than once: the node agent
    # records the console port while `creating`, the agent monitor its
    # `agent_state` once `created`.
    states = [r["instance"]["state"] for r in seen]
    walk = [state for n, state in enumerate(states) if n == 0 or state != states[n - 1]]
    assert walk == ["initial", "preflight", "creating", "created", "delete-wait", "deleted"]
    assert [r["change"] for r in seen] == ["created"] + ["updated"] * (len(seen) - 1)
    waits = [r["instance"] for r in seen if r["instance"]["state"] == "delete-wait"]
    assert len(waits) >= 2, "the api's delete-wait, then the node agent's teardown"
    assert (waits[0]["power_state"], waits[-1]["power_state"]) == ("on", "off")
    assert seen[-1]["instance"]["power_state"] == "off"


def test_watch_one_instance_as_sse_with_a_query_token(
    mesh: Mesh, rest: httpx.Client, token: str
) -> None:
    uuid = rest.post("/instances", json={"name": "sse", **CREATE}).json()["uuid"]
    url = f"{mesh.gateway_url}/instances/{uuid}:watch"
    headers = {"Accept": "text/event-stream"}
    with httpx.stream(
        "GET", url, params={"access_token": token}, headers=headers, timeout=10
    ) as watch:
        assert watch.status_code == 200
        assert watch.headers["content-type"].startswith("text/event-stream")
        lines = watch.iter_lines()
        first = sse_events(lines, 1)
        rest.delete(f"/instances/{uuid}")
        second = sse_events(lines, 1)
        while (last := sse_events(lines, 1))[0][1]["instance"]["state"] != "deleted":
            assert last[0][1]["instance"]["state"] == "delete-wait"
    assert first[0][0] == "result"
    assert first[0][1]["change"] == "existing"
    assert second[0][1]["change"] == "updated"
    assert second[0][1]["instance"]["state"] == "delete-wait"
    assert last[0][1]["change"] == "updated"


def test_watch_without_token_is_a_plain_401(mesh: Mesh) -> None:
    reply = httpx.get(f"{mesh.gateway_url}/instances:watch", timeout=10)
    assert reply.status_code == 401
    assert reply.json()["status"] == 401


PAGE = """<!DOCTYPE html>
<html><body><pre id="out"></pre><script>
const source = new EventSource("{url}");
source.addEventListener("result", (event) => {{
  document.getElementById("out").textContent = "received:" + JSON.parse(event.data).instance.uuid;
  source.close();  // an open stream would hold headless Chromium's virtual clock
}});
</script></body></html>
"""


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A static web server on another origin than the gateway."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_browser_eventsource_receives_the_stream(
    mesh: Mesh, rest: httpx.Client, token: str, page_server: tuple[Path, str], tmp_path: Path
) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "chromium is installed by `make test` (scripts/setup-host.sh test)"
    uuid = rest.post("/instances", json={"name": "browser", **CREATE}).json()["uuid"]
    folder, origin = page_server
    url = f"{mesh.gateway_url}/instances/{uuid}:watch?access_token={token}"
    (folder / "watch.html").write_text(PAGE.format(url=url))
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=3000",
            "--dump-dom",
            f"{origin}/watch.html",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert f"received:{uuid}" in done.stdout, done.stderr[-2000:]


def test_instance_events_watch_streams_new_events(rest: httpx.Client) -> None:
    uuid = rest.post("/instances", json={"name": "event-watched", **CREATE}).json()["uuid"]
    with rest.stream("GET", f"/instances/{uuid}/events:watch", timeout=10) as watch:
        assert watch.status_code == 200
        lines = watch.iter_lines()
        rest.put(f"/instances/{uuid}/metadata/role", json={"value": "db"})
        seen = []
        for line in lines:
            if line.strip():
                result = json.loads(line)["result"]
                event = result["event"]
                seen.append(event["message"])
                assert result["cursor"]
                # The create's own events may still be arriving when the watch starts.
                if (
                    event["message"] == "set attribute"
                    and event["extra"]["attribute"] == "metadata"
                ):
                    break
    assert seen[-2:] == ["set metadata key request from REST API", "set attribute"]
