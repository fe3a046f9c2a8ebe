// The operator console: provider health, spend and cap alerts and key events live from the admin hub,
// and the live connection list (GET /api/connections, DELETE to close one). The master key stays in
// this page's memory only.
import { HubClient, logLine } from "/operator/signalr-lite.js";

const $ = (id) => document.getElementById(id);
const providers = new Map();
let key = "";

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  row.append(td);
  return td;
}

function renderProviders() {
  const body = $("providers");
  body.replaceChildren();
  for (const p of [...providers.values()].sort((a, b) => a.provider.localeCompare(b.provider))) {
    const row = document.createElement("tr");
    cell(row, p.provider);
    cell(row, p.status).className = `status ${p.status}`;
    cell(row, p.responseTimeMs);
    cell(row, p.details);
    body.append(row);
  }
}

function setProviders(list) {
  for (const p of list || []) providers.set(p.provider, p);
  renderProviders();
}

async function api(method, path) {
  const res = await fetch(path, { method, headers: { Authorization: `Bearer ${key}` } });
  if (!res.ok && res.status !== 204) throw new Error(`${method} ${path}: ${res.status}`);
  return res.status === 204 ? null : res.json();
}

async function refreshConnections() {
  const body = $("connections");
  try {
    const list = await api("GET", "/api/connections");
    body.replaceChildren();
    for (const c of list.connections) {
      const row = document.createElement("tr");
      cell(row, c.connectionId);
      cell(row, c.hub);
      cell(row, c.transport);
      cell(row, c.principalKind ? `${c.principalKind}:${c.principalId}` : "anonymous");
      cell(row, c.remoteAddress);
      cell(row, c.connectedSince);
      cell(row, c.messagesIn);
      cell(row, c.messagesOut);
      const close = document.createElement("button");
      close.textContent = "Close";
      close.addEventListener("click", async () => {
        await api("DELETE", `/api/connections/${encodeURIComponent(c.connectionId)}?reason=${encodeURIComponent("Closed from the operator console")}`);
        refreshConnections();
      });
      cell(row, "").append(close);
      body.append(row);
    }
  } catch (e) {
    logLine($("alerts"), e.message);
  }
}

$("connect").addEventListener("click", async () => {
  key = $("key").value;
  const hub = new HubClient("/hubs/admin-notifications", key);
  hub.on("InitialProviderHealth", setProviders);
  hub.on("ProviderHealthRefreshed", setProviders);
  hub.on("ProviderHealthUpdate", (p) => setProviders([p]));
  hub.on("HighSpendAlert", (a) =>
    logLine($("alerts"), `${a.severity} ${a.alertType}: key ${a.virtualKeyId} at ${a.percentageUsed}% (${a.currentSpend} of ${a.budgetLimit})`));
  hub.on("ConnectionLimitReached", (a) => logLine($("alerts"), `key ${a.virtualKeyId} reached its connection limit (${a.limit})`));
  for (const name of ["VirtualKeyCreated", "VirtualKeyUpdated"]) {
    hub.on(name, (k) => logLine($("keys"), `${name}: ${k.id} ${k.keyName} enabled=${k.isEnabled} spend=${k.currentSpend}`));
  }
  hub.on("VirtualKeyDeleted", (d) => logLine($("keys"), `VirtualKeyDeleted: ${d.virtualKeyId}`));
  hub.onclose = (error) => ($("state").textContent = `disconnected${error ? ": " + error : ""}`);
  try {
    await hub.start();
    $("state").textContent = "connected";
    $("connect").disabled = true;
    refreshConnections();
  } catch (e) {
    $("state").textContent = e.message;
  }
});
$("refresh").addEventListener("click", refreshConnections);
