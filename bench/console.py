"""The browser console (issue 15, item 2), in one run on one mesh with this
machine's node agent and a running boot-sector guest with a VNC console:

- first frame: from navigation start to the guest's screen drawn by the
  console page in headless Chromium (the page's `firstFrameMs`: the canvas
  no longer one colour), p50 of fresh tickets and page loads (target
  <= 1 s); and, with our small RFB client, from opening the WebSocket to
  the first FramebufferUpdate through the tunnel, against the same on a
  direct TCP connection to the console's port;
- keystroke round trip: a key event and a FramebufferUpdateRequest, timed
  to the update's arrival, through the tunnel (gateway -> api -> node agent
  -> QEMU) against a direct VNC connection to the same port, alternated in
  one run: p50 of each and their ratio (target <= 2x). The boot-sector
  guest has halted, so a key changes nothing on its screen and an
  incremental request would wait for ever: the request is non-incremental,
  for the top left 16x16 pixels, which QEMU answers at its next refresh.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

from bench.gateway import Rest
from bench.harness import quiet_mesh
from bench.vms import boot_image
from devmesh import rfb
from devmesh.chromium import chromium
from devmesh.mesh import Mesh
from devmesh.ws_client import connect

PAGE_LOADS = 5
OPENINGS = 10
KEYSTROKES = 200
SHIFT = 0xFFE1
AREA = (16, 16)
Timings = tuple[list[float], list[float]]
"""Milliseconds through the tunnel, and direct."""
SPEC = {
    "cpus": 1,
    "memory": 128,
    "disk": [{"size": 1, "base": "boot"}],
    "video": {"model": "cirrus", "memory": 16384, "vdi": "vnc"},
}


def running_guest(rest: Rest) -> dict[str, Any]:
    """A VNC instance whose guest has written its screen."""
    uuid = json.loads(rest.call("POST", "/instances", {**SPEC, "name": "bench-console"}))["uuid"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        view = json.loads(rest.call("GET", f"/instances/{uuid}"))
        if view["state"] == "error":
            raise RuntimeError(view.get("error_message"))
        shown = rest.call("GET", f"/instances/{uuid}/consoledata")
        if view["state"] == "created" and b"SFMESH BOOT OK" in shown:
            return dict(view)
        time.sleep(0.1)
    raise TimeoutError("the guest did not boot")


def ticket(rest: Rest, uuid: str) -> dict[str, Any]:
    return dict(json.loads(rest.call("POST", f"/instances/{uuid}/consoleticket", {})))


def first_frames_in_the_browser(mesh: Mesh, rest: Rest, uuid: str) -> list[float]:
    """Milliseconds from navigation start to the guest's screen drawn."""
    found = []
    with chromium() as browser:
        for _ in range(PAGE_LOADS):
            browser.navigate(mesh.gateway_url + ticket(rest, uuid)["url"])
            found.append(float(browser.wait_for("window.sfmeshConsole?.firstFrameMs")))
            browser.navigate("about:blank")
    return found


async def first_update(pipe: rfb.Pipe) -> None:
    screen = await rfb.handshake(pipe)
    await rfb.request_update(pipe, screen, incremental=False)
    await rfb.read_update(pipe, screen)


async def openings(mesh: Mesh, rest: Rest, view: dict[str, Any]) -> Timings:
    """Milliseconds from opening to the first full FramebufferUpdate:
    through the tunnel (WebSocket opened with a fresh ticket) and direct."""
    tunnel, direct = [], []
    base = f"ws://127.0.0.1:{mesh.ports.gateway}/console/ws?instance={view['uuid']}&ticket="
    for _ in range(OPENINGS):
        url = base + ticket(rest, view["uuid"])["ticket"]
        started = time.perf_counter()
        socket = await connect(url)
        await first_update(rfb.SocketPipe(socket))
        tunnel.append((time.perf_counter() - started) * 1000)
        await socket.close()
        started = time.perf_counter()
        tcp = await rfb.TcpPipe.open("127.0.0.1", view["vdi_port"])
        await first_update(tcp)
        direct.append((time.perf_counter() - started) * 1000)
        tcp.close()
    return tunnel, direct


async def round_trip(pipe: rfb.Pipe, screen: rfb.Screen) -> float:
    started = time.perf_counter()
    await rfb.key(pipe, SHIFT)
    await rfb.request_update(pipe, screen, incremental=False, area=AREA)
    await rfb.read_update(pipe, screen)
    return (time.perf_counter() - started) * 1000


async def keystrokes(mesh: Mesh, rest: Rest, view: dict[str, Any]) -> Timings:
    """Key-to-update round trips, tunnel and direct alternating."""
    url = (
        f"ws://127.0.0.1:{mesh.ports.gateway}/console/ws?instance={view['uuid']}"
        f"&ticket={ticket(rest, view['uuid'])['ticket']}"
    )
    socket = await connect(url)
    tunnel_pipe = rfb.SocketPipe(socket)
    tunnel_screen = await rfb.handshake(tunnel_pipe)
    direct_pipe = await rfb.TcpPipe.open("127.0.0.1", view["vdi_port"])
    direct_screen = await rfb.handshake(direct_pipe)
    tunnel, direct = [], []
    for _ in range(KEYSTROKES):
        tunnel.append(await round_trip(tunnel_pipe, tunnel_screen))
        direct.append(await round_trip(direct_pipe, direct_screen))
    await socket.close()
    direct_pipe.close()
    return tunnel, direct


def p50(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    """Start the mesh and measure."""
    with (
        boot_image() as url,
        quiet_mesh(node_agent=True, settings={"SFMESH_IMAGE_SHORTHANDS": f"boot={url}"}) as mesh,
    ):
        rest = Rest(mesh.ports.gateway, Rest.token(mesh))
        view = running_guest(rest)
        frames = first_frames_in_the_browser(mesh, rest, view["uuid"])
        opened_tunnel, opened_direct = asyncio.run(openings(mesh, rest, view))
        key_tunnel, key_direct = asyncio.run(keystrokes(mesh, rest, view))
    print("browser console (boot-sector guest, VNC)")
    print(
        f"  first frame in the browser, navigation start to screen drawn: p50 "
        f"{p50(frames):.0f} ms, max {max(frames):.0f} ms ({PAGE_LOADS} page loads; "
        "target <= 1000 ms)"
    )
    print(
        f"  opening to first FramebufferUpdate: tunnel p50 {p50(opened_tunnel):.1f} ms, "
        f"direct p50 {p50(opened_direct):.1f} ms ({OPENINGS} each)"
    )
    ratio = p50(key_tunnel) / p50(key_direct)
    added = p50(key_tunnel) - p50(key_direct)
    print(
        f"  keystroke round trip: tunnel p50 {p50(key_tunnel):.2f} ms, direct p50 "
        f"{p50(key_direct):.2f} ms, ratio {ratio:.2f}x, the tunnel adds {added:.2f} ms "
        f"({KEYSTROKES} each; target <= 2x; QEMU answers at its display refresh, ~30 ms)"
    )


if __name__ == "__main__":
    main()
