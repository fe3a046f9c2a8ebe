// The admin hub test page: connect with the master key, call every method, log every event. "Test
// Subscriptions" runs the subscription methods in turn (the key id field's key, if one is entered, and
// the provider field's provider) and logs what each answered.
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
  $("state").dataset.state = on ? "connected" : "disconnected";
  $("connect").disabled = on;
  $("disconnect").disabled = !on;
  $("test-subscriptions").disabled = !on;
}

/** Invokes one method and logs how it ended; resolves to whether it completed. */
async function call(method, args) {
  try {
    await hub.invoke(method, ...args);
    logLine($("log"), `${method}(${args.map((a) => JSON.stringify(a)).join(", ")}) completed`);
    return true;
  } catch (e) {
    logLine($("log"), `${method} failed: ${e.message}`);
    return false;
  }
}

function argOf(field) {
  const raw = $(field).value.trim();
  return /^\d+$/.test(raw) ? Number(raw) : raw;
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
  button.addEventListener("click", () => call(button.dataset.method, button.dataset.arg ? [argOf(button.dataset.arg)] : []));
}
$("test-subscriptions").addEventListener("click", async () => {
  const calls = [];
  if ($("keyId").value.trim()) calls.push(["SubscribeToVirtualKey", [argOf("keyId")]]);
  if ($("provider").value.trim()) calls.push(["SubscribeToProvider", [argOf("provider")]]);
  calls.push(["RefreshProviderHealth", []]);
  let ok = 0;
  for (const [method, args] of calls) if (await call(method, args)) ok++;
  logLine($("log"), `Test Subscriptions: ${ok} of ${calls.length} methods completed`);
});
