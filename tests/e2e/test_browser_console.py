"""The browser console end to end (issue 15, item 2): a ticket from
`POST /instances/{ref}/consoleticket`, the gateway's page with noVNC in
headless Chromium (devmesh/chromium.py, CDP on a pipe), the WebSocket
through the api to the node agent and QEMU's VNC console of a boot-sector
guest; refusals of other namespaces' and expired tickets; sessions ending
with their ticket and with the instance."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from typing import Any

import httpx
import pytest
from PIL import Image

from devmesh import rfb
from devmesh.chromium import Chromium, chromium
from devmesh.mesh import Mesh
from devmesh.ws_client import Refused, connect
from tests.e2e.test_vms import created, wait_for
from tests.meshes import tenant

VNC = {"video": {"model": "cirrus", "memory": 16384, "vdi": "vnc"}}
STATE = "window.sfmeshConsole"


def booted(client: httpx.Client, name: str, **fields: Any) -> dict[str, Any]:
    """A running boot-sector instance whose guest has written its screen."""
    instance = created(client, name, **{**VNC, **fields})
    assert instance["state"] == "created", instance.get("error_message")
    uuid = instance["uuid"]
    wait_for(lambda: b"SFMESH BOOT OK" in client.get(f"/instances/{uuid}/consoledata").content)
    return instance


def ticket(client: httpx.Client, uuid: str, **body: Any) -> dict[str, Any]:
    reply = client.post(f"/instances/{uuid}/consoleticket", json=body)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def socket_url(mesh: Mesh, uuid: str, token: str) -> str:
    return f"ws://127.0.0.1:{mesh.ports.gateway}/console/ws?instance={uuid}&ticket={token}"


def levels(png: bytes) -> Image.Image:
    with Image.open(io.BytesIO(png)) as image:
        return image.convert("L")


def shows_text(image: Image.Image) -> bool:
    """Bright text on a dark background, as the guest's screen is."""
    pixels = image.tobytes()
    bright = sum(1 for level in pixels if level > 128)
    return 50 < bright < len(pixels) // 2


def canvas_png(browser: Chromium) -> bytes:
    url = browser.evaluate("document.querySelector('#screen canvas').toDataURL('image/png')")
    return base64.b64decode(str(url).partition(",")[2])


def screen_area(browser: Chromium) -> Image.Image:
    """The page's screenshot, cut to where the guest's screen shows."""
    box = browser.evaluate(
        "(({x, y, width, height}) => [x, y, x + width, y + height])"
        "(document.getElementById('screen').getBoundingClientRect())"
    )
    left, top, right, bottom = (int(v) for v in box)
    return levels(browser.screenshot()).crop((left, top, right, bottom))


def closed_without_a_frame(browser: Chromium, mesh: Mesh, uuid: str, token: str) -> None:
    browser.navigate(f"{mesh.gateway_url}/console/#instance={uuid}&ticket={token}")
    browser.wait_for(f"{STATE} && {STATE}.status === 'closed'")
    state = browser.evaluate(STATE)
    assert state["firstFrameMs"] is None and state["connectedMs"] is None, state
    assert "ticket" in state["reason"]
    drawn = browser.evaluate(
        "(c => c && c.width ? c.toDataURL() : null)(document.querySelector('#screen canvas'))"
    )
    assert drawn is None, "noVNC drew a screen"
    assert not shows_text(screen_area(browser))


def test_the_page_shows_the_guest_s_screen(mesh: Mesh, rest: httpx.Client) -> None:
    instance = booted(rest, "browser-console")
    uuid = instance["uuid"]
    granted = ticket(rest, uuid)
    assert granted["instance"] == uuid
    assert granted["url"] == f"/console/#instance={uuid}&ticket={granted['ticket']}"
    assert 290 < granted["expires_at"] - time.time() <= 300  # the default lifetime
    assert "browser-console" in httpx.get(f"{mesh.gateway_url}/").text
    with chromium() as browser:
        browser.navigate(mesh.gateway_url + granted["url"])
        browser.wait_for(f"{STATE} && {STATE}.firstFrameMs")
        state = browser.evaluate(STATE)
        assert state["status"] == "connected"
        assert browser.evaluate("location.hash") == ""  # the ticket left the address bar
        drawn = levels(canvas_png(browser))
        shown = screen_area(browser)
    assert shows_text(shown)
    # The same screen as libvirt's screenshot of the instance.
    shot = rest.get(f"/instances/{uuid}/screenshot")
    assert shot.status_code == 200, shot.text
    libvirt_view = levels(rest.get(f"/blobs/{shot.json()}/data").content)
    assert drawn.size == libvirt_view.size
    pairs = list(zip(drawn.tobytes(), libvirt_view.tobytes(), strict=True))
    same = sum(1 for a, b in pairs if abs(a - b) < 16) / len(pairs)
    assert same > 0.99, f"only {same:.2%} of the pixels agree"  # a blinking cursor may not
    opened = [e for e in rest.get(f"/instances/{uuid}/events").json() if "console" in e["message"]]
    assert {e["message"] for e in opened} >= {
        "console ticket request from REST API",
        "browser console opened",
        "browser console closed",
    }
    rest.delete(f"/instances/{uuid}")


def test_another_namespace_s_ticket_or_an_expired_one_gets_nothing(
    mesh: Mesh, rest: httpx.Client, token: str
) -> None:
    victim = booted(rest, "console-victim")["uuid"]
    expired = ticket(rest, victim, ttl=1)["ticket"]
    with tenant(mesh, token, "console-other") as other:
        assert other.post(f"/instances/{victim}/consoleticket").status_code == 404
        theirs = booted(other, "console-theirs")["uuid"]
        their_ticket = ticket(other, theirs)["ticket"]
        time.sleep(1.2)
        with chromium() as browser:
            closed_without_a_frame(browser, mesh, victim, their_ticket)
            closed_without_a_frame(browser, mesh, victim, expired)
        for bad, message in (
            (their_ticket, "console ticket is for another instance"),
            (expired, "console ticket expired"),
            ("forged", "invalid console ticket"),
        ):
            with pytest.raises(Refused) as refused:
                asyncio.run(connect(socket_url(mesh, victim, bad)))
            assert refused.value.status == 401
            assert message.encode() in refused.value.body
        other.delete(f"/instances/{theirs}")
    rest.delete(f"/instances/{victim}")


async def open_console(url: str) -> tuple[Any, rfb.Screen]:
    socket = await connect(url)
    return socket, await rfb.handshake(rfb.SocketPipe(socket))


async def closes(socket: Any) -> tuple[int | None, str, float]:
    """Read until the server closes; its code, reason and when."""
    while await asyncio.wait_for(socket.recv(), 30) is not None:
        pass
    return socket.close_code, socket.close_reason, time.monotonic()


def test_a_session_ends_with_its_ticket_and_a_ticket_opens_one(
    mesh: Mesh, rest: httpx.Client
) -> None:
    uuid = booted(rest, "console-expiry")["uuid"]
    short = ticket(rest, uuid, ttl=4)

    async def session() -> tuple[int | None, str, float]:
        socket, screen = await open_console(socket_url(mesh, uuid, short["ticket"]))
        assert screen.width >= 320 and screen.height >= 200
        await rfb.request_update(rfb.SocketPipe(socket), screen, incremental=False)
        assert await rfb.read_update(rfb.SocketPipe(socket), screen)
        return await closes(socket)

    code, reason, at = asyncio.run(session())
    assert (code, reason) == (4401, "console ticket expired")
    assert abs(time.time() - time.monotonic() + at - short["expires_at"]) < 2
    with pytest.raises(Refused) as again:
        asyncio.run(connect(socket_url(mesh, uuid, short["ticket"])))
    assert again.value.status == 401
    once = ticket(rest, uuid)["ticket"]

    async def twice() -> None:
        socket, _ = await open_console(socket_url(mesh, uuid, once))
        await socket.close()
        with pytest.raises(Refused) as used:
            await connect(socket_url(mesh, uuid, once))
        assert used.value.status == 401
        assert b"console ticket already used" in used.value.body

    asyncio.run(twice())
    rest.delete(f"/instances/{uuid}")


def test_the_session_closes_when_the_instance_powers_off(mesh: Mesh, rest: httpx.Client) -> None:
    uuid = booted(rest, "console-poweroff")["uuid"]
    granted = ticket(rest, uuid)

    async def session() -> tuple[int | None, str, float]:
        socket, _ = await open_console(socket_url(mesh, uuid, granted["ticket"]))
        async with httpx.AsyncClient(base_url=mesh.gateway_url, headers=rest.headers) as client:
            off = await client.post(f"/instances/{uuid}/poweroff", timeout=60)
            assert off.status_code == 200, off.text
        return await closes(socket)

    code, _, _ = asyncio.run(session())
    assert code == 1000
    off = rest.post(f"/instances/{uuid}/consoleticket")
    assert off.status_code == 406, off.text
    assert off.json()["error"] == f"instance {uuid} is not running"
    rest.delete(f"/instances/{uuid}")


def test_what_has_no_browser_console(rest: httpx.Client) -> None:
    spice = created(rest, "console-spice")  # the default vdi
    refused = rest.post(f"/instances/{spice['uuid']}/consoleticket")
    assert refused.status_code == 409, refused.text
    assert "SPICE" in refused.json()["error"]
    unknown = rest.post(f"/instances/{spice['uuid']}/consoleticket", json={"lifetime": 5})
    assert unknown.status_code == 400
    assert "lifetime" in unknown.json()["error"]
    too_long = rest.post(f"/instances/{spice['uuid']}/consoleticket", json={"ttl": 100000})
    assert too_long.status_code == 400
    assert too_long.json()["error"] == "ttl must be 1 to 300 seconds"
    rest.delete(f"/instances/{spice['uuid']}")
