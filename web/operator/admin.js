// The operator console. Live from the admin hub: provider health, spend and cap alerts, and key events
// (the keys table follows VirtualKeyCreated/Updated/Deleted). Polled every second while connected:
// GET /api/connections, which gives the live connections and each key's live connection count on this
// node. Buttons disable or enable a key (PUT /api/virtualkeys/{id}: its connections close at once) and
// close one connection (DELETE /api/connections/{id}). The master key stays in this page's memory only.
import { HubClient, logLine } from "/operator/signalr-lite.js";

const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);
const providers = new Map();
const keys = new Map();
let liveCounts = new Map();
let masterKey = "";
let hub = null;
let poller = null;

function cell(row, text, role) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  if (role) td.dataset.role = role;
  row.append(td);
  return td;
}

function event(text) {
  logLine($("events"), text);
}

function renderProviders() {
  const body = $("providers");
  body.replaceChildren();
  for (const p of [...providers.values()].sort((a, b) => a.provider.localeCompare(b.provider))) {
    const row = document.createElement("tr");
    row.dataset.provider = p.provider;
    cell(row, p.provider, "provider");
    cell(row, p.status, "status").className = `status ${p.status}`;
    cell(row, p.responseTimeMs, "response-ms");
    cell(row, p.details, "details");
    body.append(row);
  }
}

function setProviders(list) {
  for (const p of list || []) providers.set(p.provider, p);
  renderProviders();
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${masterKey}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!res.ok) {
    const error = await res.json().catch(() => null);
    throw new Error(`${method} ${path}: ${res.status}${error?.error?.message ? " " + error.error.message : ""}`);
  }
  return res.status === 204 ? null : res.json();
}

/** One key's row, created on first sight and updated in place (so a button is never replaced under a click). */
function keyRow(k) {
  let row = $("keys").querySelector(`tr[data-key-id="${k.id}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.keyId = String(k.id);
    for (const role of ["id", "name", "prefix", "state", "spend", "connections"]) cell(row, "", role);
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.dataset.action = "toggle";
    toggle.addEventListener("click", () => setEnabled(Number(row.dataset.keyId), row.dataset.enabled !== "true"));
    cell(row, "", "actions").append(toggle);
    const after = [...$("keys").children].find((r) => Number(r.dataset.keyId) > k.id);
    $("keys").insertBefore(row, after || null);
  }
  return row;
}

function renderKey(k) {
  const row = keyRow(k);
  const set = (role, text) => (row.querySelector(`[data-role="${role}"]`).textContent = text);
  row.dataset.enabled = String(k.isEnabled);
  set("id", k.id);
  set("name", k.keyName);
  set("prefix", k.keyPrefix);
  set("state", k.isEnabled ? "enabled" : "disabled");
  set("spend", k.maxBudget == null ? `${k.currentSpend}` : `${k.currentSpend} of ${k.maxBudget}`);
  set("connections", String(liveCounts.get(String(k.id)) || 0));
  const toggle = row.querySelector('button[data-action="toggle"]');
  toggle.textContent = k.isEnabled ? "Disable" : "Enable";
  toggle.dataset.keyAction = k.isEnabled ? "disable" : "enable";
}

function upsertKey(k) {
  keys.set(k.id, k);
  renderKey(k);
}

function removeKey(id) {
  keys.delete(id);
  $("keys").querySelector(`tr[data-key-id="${id}"]`)?.remove();
}

async function loadKeys() {
  for (let page = 1; ; page++) {
    const result = await api("GET", `/api/virtualkeys?page=${page}&pageSize=500`);
    for (const k of result.items) upsertKey(k);
    if (page >= result.totalPages) break;
  }
}

async function setEnabled(id, enabled) {
  try {
    const k = await api("PUT", `/api/virtualkeys/${id}`, { isEnabled: enabled });
    upsertKey(k);
    event(`key ${id} ${enabled ? "enabled" : "disabled"} from this console`);
    refreshConnections();
  } catch (e) {
    logLine($("alerts"), e.message);
  }
}

/** Connection rows, keyed by connection id and updated in place. */
function renderConnections(list) {
  const body = $("connections");
  const seen = new Set();
  for (const c of list) {
    seen.add(c.connectionId);
    let row = [...body.children].find((r) => r.dataset.connectionId === c.connectionId);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.connectionId = c.connectionId;
      if (c.principalKind === "vkey") row.dataset.keyId = c.principalId;
      cell(row, c.connectionId, "id");
      cell(row, c.hub, "hub");
      cell(row, c.transport, "transport");
      cell(row, c.principalKind ? `${c.principalKind}:${c.principalId}` : "anonymous", "principal");
      cell(row, c.remoteAddress, "address");
      cell(row, c.connectedSince, "since");
      cell(row, "", "in");
      cell(row, "", "out");
      const close = document.createElement("button");
      close.type = "button";
      close.textContent = "Close";
      close.dataset.action = "close";
      close.addEventListener("click", async () => {
        const reason = encodeURIComponent("Closed from the operator console");
        try {
          await api("DELETE", `/api/connections/${encodeURIComponent(c.connectionId)}?reason=${reason}`);
        } catch (e) {
          logLine($("alerts"), e.message);
        }
        refreshConnections();
      });
      cell(row, "", "actions").append(close);
      body.append(row);
    }
    row.querySelector('[data-role="in"]').textContent = c.messagesIn;
    row.querySelector('[data-role="out"]').textContent = c.messagesOut;
  }
  for (const row of [...body.children]) if (!seen.has(row.dataset.connectionId)) row.remove();
  $("connection-count").textContent = `(${list.length})`;
}

let refreshing = false;
async function refreshConnections() {
  if (refreshing || !masterKey) return;
  refreshing = true;
  try {
    const { connections } = await api("GET", "/api/connections");
    renderConnections(connections);
    liveCounts = new Map();
    for (const c of connections) {
      if (c.principalKind === "vkey") liveCounts.set(c.principalId, (liveCounts.get(c.principalId) || 0) + 1);
    }
    for (const k of keys.values()) renderKey(k);
  } catch (e) {
    logLine($("alerts"), e.message);
  } finally {
    refreshing = false;
  }
}

function disconnected(text) {
  clearInterval(poller);
  poller = null;
  $("state").textContent = text;
  $("state").dataset.state = "disconnected";
  $("connect").disabled = false;
}

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  masterKey = $("key").value;
  $("connect").disabled = true;
  $("state").textContent = "connecting…";
  hub = new HubClient("/hubs/admin-notifications", masterKey);
  hub.on("InitialProviderHealth", setProviders);
  hub.on("ProviderHealthRefreshed", setProviders);
  hub.on("ProviderHealthUpdate", (p) => {
    setProviders([p]);
    event(`ProviderHealthUpdate: ${p.provider} ${p.status}${p.details ? " (" + p.details + ")" : ""}`);
  });
  hub.on("HighSpendAlert", (a) =>
    logLine($("alerts"), `${a.severity} ${a.alertType}: key ${a.virtualKeyId} at ${a.percentageUsed}% (${a.currentSpend} of ${a.budgetLimit})`));
  hub.on("ConnectionLimitReached", (a) => logLine($("alerts"), `key ${a.virtualKeyId} reached its connection limit (${a.limit})`));
  for (const name of ["VirtualKeyCreated", "VirtualKeyUpdated"]) {
    hub.on(name, (k) => {
      upsertKey(k);
      event(`${name}: ${k.id} ${k.keyName} enabled=${k.isEnabled} spend=${k.currentSpend}`);
    });
  }
  hub.on("VirtualKeyDeleted", (d) => {
    removeKey(d.virtualKeyId);
    event(`VirtualKeyDeleted: ${d.virtualKeyId}`);
  });
  hub.onclose = (error) => disconnected(`disconnected${error ? ": " + error : ""}`);
  try {
    await hub.start();
    $("state").textContent = "connected";
    $("state").dataset.state = "connected";
    await loadKeys().catch((err) => logLine($("alerts"), err.message));
    await refreshConnections();
    poller = setInterval(refreshConnections, POLL_MS);
  } catch (err) {
    masterKey = "";
    disconnected(`refused: ${err.message}`);
  }
});
$("refresh").addEventListener("click", refreshConnections);
