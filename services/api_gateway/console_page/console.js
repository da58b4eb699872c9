// The sfmesh browser console: noVNC's RFB client (Debian's novnc package,
// served by the gateway at /novnc/) on the gateway's WebSocket route
// /console/ws, authorized by the ticket of POST /instances/{ref}/consoleticket.
// The instance and the ticket come in this page's URL fragment, which
// browsers never send to a server; the fragment is dropped from the address
// bar at once. A ticket opens one session, which ends when the ticket
// expires: ask for a new ticket to open the console again.
import RFB from "/novnc/core/rfb.js";

// What the page shows, also read by tests and benchmarks.
const state = { status: "connecting", reason: "", code: null, connectedMs: null, firstFrameMs: null };
window.sfmeshConsole = state;

const statusLine = document.getElementById("status");

function show(status, reason) {
  state.status = status;
  state.reason = reason || "";
  statusLine.textContent = reason ? `${status}: ${reason}` : status;
  document.body.dataset.status = status;
  document.getElementById("ctrl-alt-del").disabled = status !== "connected";
}

// Sets `firstFrameMs` (since navigation began) once the screen shows
// something other than one colour: the guest's first frame drawn.
function watchFirstFrame(screen) {
  const probe = document.createElement("canvas");
  probe.width = 64;
  probe.height = 36;
  const context = probe.getContext("2d", { willReadFrequently: true });
  const look = () => {
    const canvas = screen.querySelector("canvas");
    if (state.status !== "connected" || !canvas || !canvas.width) {
      if (state.status === "connected") requestAnimationFrame(look);
      return;
    }
    context.drawImage(canvas, 0, 0, probe.width, probe.height);
    const pixels = context.getImageData(0, 0, probe.width, probe.height).data;
    for (let i = 4; i < pixels.length; i += 4) {
      if (pixels[i] !== pixels[0] || pixels[i + 1] !== pixels[1] || pixels[i + 2] !== pixels[2]) {
        state.firstFrameMs = performance.now();
        return;
      }
    }
    requestAnimationFrame(look);
  };
  requestAnimationFrame(look);
}

function open(instance, ticket) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = new URLSearchParams({ instance, ticket });
  const socket = new WebSocket(`${scheme}//${location.host}/console/ws?${query}`);
  socket.addEventListener("close", (event) => {
    state.code = event.code;
    if (event.code === 1000) show("closed", "the console closed (the instance stopped?)");
    else if (event.code === 1006) show("closed", "refused or cut: the ticket may be used or expired");
    else show("closed", event.reason || `closed (${event.code})`);
  });
  const screen = document.getElementById("screen");
  const rfb = new RFB(screen, socket, { shared: true });
  rfb.scaleViewport = true;
  rfb.background = "#000";
  rfb.addEventListener("connect", () => {
    state.connectedMs = performance.now();
    show("connected");
    watchFirstFrame(screen);
  });
  rfb.addEventListener("desktopname", (event) => {
    document.title = `${event.detail.name} - sfmesh console`;
  });
  document.getElementById("ctrl-alt-del").addEventListener("click", () => rfb.sendCtrlAltDel());
}

const fragment = new URLSearchParams(location.hash.slice(1));
history.replaceState(null, "", location.pathname + location.search);
const instance = fragment.get("instance");
const ticket = fragment.get("ticket");
if (instance && ticket) open(instance, ticket);
else show("closed", "no ticket: open the url of POST /instances/{ref}/consoleticket");
