// A small SignalR client for the operator pages: JSON protocol over a WebSocket opened without negotiate
// (the server creates the connection on the spot), with the master key as `access_token`. It knows
// invocations with results, events, pings and Close; nothing else is needed here. The official
// @microsoft/signalr client works against the same hubs; this file only avoids a build step.
"use strict";

const RS = "\u001e";

export class HubClient {
  /** `path` like "/hubs/admin-notifications"; `token` is sent as access_token (may be empty). */
  constructor(path, token) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = token ? `?access_token=${encodeURIComponent(token)}` : "";
    this.url = `${scheme}//${location.host}${path}${query}`;
    this.handlers = new Map();
    this.pending = new Map();
    this.nextId = 1;
    this.onclose = () => {};
  }

  /** Registers a handler for server-to-client invocations of `name` (case-insensitive). */
  on(name, handler) {
    this.handlers.set(name.toLowerCase(), handler);
  }

  /** Opens the socket and completes the handshake. */
  start() {
    return new Promise((resolve, reject) => {
      let handshaken = false;
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.onopen = () => ws.send(JSON.stringify({ protocol: "json", version: 1 }) + RS);
      ws.onerror = () => {
        if (!handshaken) reject(new Error("Cannot connect (wrong key, or the server is down)"));
      };
      ws.onclose = (e) => {
        clearInterval(this.pinger);
        for (const { reject: fail } of this.pending.values()) fail(new Error("Connection closed"));
        this.pending.clear();
        if (handshaken) this.onclose(this.closeError || (e.code === 1000 ? undefined : `socket closed (${e.code})`));
        else reject(new Error("Connection refused"));
      };
      ws.onmessage = (e) => {
        for (const record of String(e.data).split(RS)) {
          if (!record) continue;
          const msg = JSON.parse(record);
          if (!handshaken) {
            if (msg.error) return reject(new Error(msg.error));
            handshaken = true;
            this.pinger = setInterval(() => this.send({ type: 6 }), 15000);
            resolve();
            continue;
          }
          this.dispatch(msg);
        }
      };
    });
  }

  dispatch(msg) {
    if (msg.type === 1) {
      const handler = this.handlers.get(String(msg.target).toLowerCase());
      if (handler) handler(...(msg.arguments || []));
    } else if (msg.type === 3) {
      const waiter = this.pending.get(msg.invocationId);
      if (!waiter) return;
      this.pending.delete(msg.invocationId);
      if (msg.error) waiter.reject(new Error(msg.error));
      else waiter.resolve(msg.result);
    } else if (msg.type === 7) {
      this.closeError = msg.error || "closed by the server";
      this.ws.close();
    }
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg) + RS);
  }

  /** Invokes a hub method; resolves with its result, rejects with its error. */
  invoke(target, ...args) {
    const invocationId = String(this.nextId++);
    return new Promise((resolve, reject) => {
      this.pending.set(invocationId, { resolve, reject });
      this.send({ type: 1, invocationId, target, arguments: args });
    });
  }

  stop() {
    if (this.ws) this.ws.close(1000);
  }
}

/** Appends a text line to a log element, newest first, keeping at most `max` lines. */
export function logLine(element, text, max = 500) {
  const line = document.createElement("div");
  line.textContent = `${new Date().toISOString().slice(11, 23)}  ${text}`;
  element.prepend(line);
  while (element.childElementCount > max) element.lastElementChild.remove();
}
