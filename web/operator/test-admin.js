// The admin hub test page: connect with the master key, call every method, log every event.
import { HubClient, logLine } from "/operator/signalr-lite.js";

const EVENTS = [
  "InitialProviderHealth", "SubscribedToVirtualKey", "UnsubscribedFromVirtualKey", "SubscribedToProvider",
  "UnsubscribedFromProvider", "ProviderHealthStatus", "ProviderHealthRefreshed", "ProviderHealthUpdate",
  "VirtualKeyCreated", "VirtualKeyUpdated", "VirtualKeyDeleted", "VirtualKeyUpdate", "HighSpendAlert",
  "ConnectionLimitReached", "Error",
];
const $ = (id) => document.getElementById(id);
let hub = null;

function setConnected(on, text) {
  $("state").textContent = text;
  $("connect").disabled = on;
  $("disconnect").disabled = !on;
}

$("connect").addEventListener("click", async () => {
  hub = new HubClient("/hubs/admin-notifications", $("key").value);
  for (const name of EVENTS) hub.on(name, (...args) => logLine($("log"), `${name} ${JSON.stringify(args)}`));
  hub.onclose = (error) => {
    setConnected(false, "disconnected");
    logLine($("log"), `closed${error ? ": " + error : ""}`);
  };
  try {
    await hub.start();
    setConnected(true, "connected");
    logLine($("log"), "connected");
  } catch (e) {
    setConnected(false, "refused");
    logLine($("log"), e.message);
  }
});
$("disconnect").addEventListener("click", () => hub && hub.stop());
for (const button of document.querySelectorAll("button[data-method]")) {
  button.addEventListener("click", async () => {
    const method = button.dataset.method;
    const raw = button.dataset.arg ? $(button.dataset.arg).value.trim() : undefined;
    const args = raw === undefined ? [] : [/^\d+$/.test(raw) ? Number(raw) : raw];
    try {
      await hub.invoke(method, ...args);
      logLine($("log"), `${method}(${args.map((a) => JSON.stringify(a)).join(", ")}) completed`);
    } catch (e) {
      logLine($("log"), `${method} failed: ${e.message}`);
    }
  });
}
