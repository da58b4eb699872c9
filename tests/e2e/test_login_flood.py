"""A flood of wrong keys at `POST /auth`, through the gateway: the api checks
a bounded number at a time and refuses the rest at once with 503
`LOGINS_BUSY` and `Retry-After: 1`; nothing else answers, and a right key
logs in once the flood is over."""

from __future__ import annotations

import threading
from collections import Counter

import httpx

from devmesh.mesh import Mesh
from services.api.namespaces.keys import KEY_CHECKERS, KEY_CHECKS_WAITING

FLOOD = 2 * (KEY_CHECKERS + KEY_CHECKS_WAITING) + 10


def test_a_flood_of_wrong_keys_is_refused_beyond_the_queue(mesh: Mesh) -> None:
    answers: list[httpx.Response] = []
    lock = threading.Lock()
    start = threading.Barrier(FLOOD)

    def login() -> None:
        start.wait()
        reply = httpx.post(
            f"{mesh.gateway_url}/auth", json={"namespace": "system", "key": "wrong"}, timeout=120
        )
        with lock:
            answers.append(reply)

    threads = [threading.Thread(target=login) for _ in range(FLOOD)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = Counter(reply.status_code for reply in answers)
    assert set(statuses) <= {401, 503}, statuses
    busy = [reply for reply in answers if reply.status_code == 503]
    assert busy, statuses  # more arrived at once than may wait
    assert all(reply.headers.get("retry-after") == "1" for reply in busy)
    assert all("too many logins" in reply.json()["message"] for reply in busy)
    assert statuses[401] >= KEY_CHECKERS  # those admitted were checked and refused
    reply = httpx.post(
        f"{mesh.gateway_url}/auth", json={"namespace": "system", "key": mesh.system_key}
    )
    assert reply.status_code == 200, reply.text
