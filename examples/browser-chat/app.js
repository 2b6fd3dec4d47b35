// Tether browser chat: the built SDK from client-ts/dist, the platform WebSocket and the
// `tether.bearer.<jwt>` subprotocol carrier (browsers cannot set an Authorization header
// on a WebSocket). Settings come from the form or the URL fragment:
//   index.html#token=<jwt>&urls=ws://127.0.0.1:7070/v1/connect&channel=chat.lobby
import { TetherClient, attachBrowserHooks } from "../../client-ts/dist/index.js";

const $ = (id) => document.getElementById(id);

// Terminal close codes (40xx) the user must act on; the SDK does not reconnect after them.
const TERMINAL_MESSAGES = {
  4004: "Your session was revoked",
  4005: "You were logged out",
  4006: "This tenant is disabled",
};

const fragment = new URLSearchParams(location.hash.slice(1));
for (const key of ["token", "urls", "channel"]) {
  const v = fragment.get(key);
  if (v) $(key).value = v;
}
// Keep the token out of the address bar (and of history) once read.
if (fragment.has("token")) history.replaceState(null, "", location.pathname + location.search);

function banner(kind, text) {
  const el = $("banner");
  el.className = kind ?? "";
  el.textContent = text ?? "";
}

function status(text) {
  $("status").textContent = text;
}

function showMessage(seq, data) {
  const li = document.createElement("li");
  const s = document.createElement("span");
  s.className = "seq";
  s.textContent = `#${seq}`;
  li.append(s, typeof data?.text === "string" ? data.text : JSON.stringify(data));
  $("messages").append(li);
  li.scrollIntoView({ block: "nearest" });
}

function setComposer(enabled) {
  $("text").disabled = !enabled;
  $("publish").disabled = !enabled;
}

let client = null;

$("connect").addEventListener("click", async () => {
  const token = $("token").value.trim();
  const urls = $("urls").value.split(",").map((u) => u.trim()).filter(Boolean);
  const channel = $("channel").value.trim();
  if (!token || urls.length === 0 || !channel) {
    status("fill in the node URL, the token and the channel");
    return;
  }
  $("connect").disabled = true;
  banner(null);
  status("connecting…");
  client = new TetherClient({
    urls,
    getToken: async () => token,
    tokenCarrier: "subprotocol",
    client: { name: "browser-chat", version: "0.1.0" },
  });
  client.on("connected", (e) => {
    banner(null);
    status(`connected to ${e.node} (${e.region}), session ${e.sessionId}${e.resumed ? " (resumed)" : ""}`);
    document.body.dataset.session = e.sessionId;
    setComposer(true);
  });
  client.on("reconnecting", (e) => {
    banner("reconnecting", `Reconnecting… (attempt ${e.attempt})`);
    setComposer(false);
  });
  client.on("event", (e) => {
    if (e.channel === channel) showMessage(e.seq, e.data);
  });
  client.on("closed", (e) => {
    if (!e.terminal) return;
    setComposer(false);
    if (e.code === 1000) {
      status("disconnected");
      return;
    }
    banner("terminal", TERMINAL_MESSAGES[e.code] ?? `Disconnected (${e.code} ${e.reason})`);
    status(`closed: ${e.code} ${e.reason}`);
  });
  client.on("error", (e) => console.warn("tether:", e.code, e.message));
  attachBrowserHooks(client);
  try {
    await client.connect();
    await client.subscribe(channel);
    status(`${$("status").textContent}; subscribed to ${channel}`);
  } catch (e) {
    status(`could not connect: ${e.code ?? ""} ${e.message ?? e}`);
  }
});

$("send").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = $("text");
  const text = input.value.trim();
  if (!client || !text) return;
  input.value = "";
  try {
    await client.publish($("channel").value.trim(), { text });
  } catch (e) {
    status(`not sent: ${e.code}: ${e.message}`);
  }
});
