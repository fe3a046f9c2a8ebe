// useChat: the widget's connection. It exchanges the user's JWT for a one-time ticket over REST (the
// JWT never goes into a URL), opens the WebSocket with the ticket, pings every 25 s, and reconnects
// with exponential backoff and jitter, fetching a new ticket each time. Close code 4003 (the server
// cannot check tickets) stops it for good, as does a refused JWT.

import { useCallback, useEffect, useReducer, useRef, useState } from 'react';
import { backoffDelay } from './backoff.js';
import { chatReducer, initialChatState, isBusy } from './chatState.js';

export const PING_INTERVAL_MS = 25000;
const CLOSE_TICKET_STORE_DOWN = 4003;

function wsUrl(baseUrl, ticket) {
  const base = new URL(baseUrl || window.location.origin, window.location.href);
  base.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
  base.pathname = `${base.pathname.replace(/\/$/, '')}/api/agent/ws`;
  base.search = `?ticket=${encodeURIComponent(ticket)}`;
  return base.toString();
}

/**
 * @param {object} options
 * @param {string} [options.baseUrl] where the Switchyard server is ('' = this page's origin)
 * @param {() => (string|Promise<string>)} options.getToken the user's JWT ('' in development mode)
 * @param {number} [options.pingIntervalMs]
 * @param {{initialMs?: number, maxMs?: number}} [options.backoff]
 */
export function useChat({ baseUrl = '', getToken, pingIntervalMs = PING_INTERVAL_MS, backoff } = {}) {
  const [state, dispatch] = useReducer(chatReducer, initialChatState);
  const [status, setStatus] = useState('connecting');
  const [stopReason, setStopReason] = useState(null);
  const socketRef = useRef(null);
  const conversationRef = useRef(null);
  const optionsRef = useRef({ baseUrl, getToken, pingIntervalMs, backoff });
  optionsRef.current = { baseUrl, getToken, pingIntervalMs, backoff };
  conversationRef.current = state.conversationId;

  useEffect(() => {
    let disposed = false;
    let attempt = 0;
    let retryTimer = null;
    let pingTimer = null;

    const stop = (reason) => {
      setStatus('stopped');
      setStopReason(reason);
    };

    const scheduleReconnect = () => {
      if (disposed) return;
      setStatus('reconnecting');
      const delay = backoffDelay(attempt, optionsRef.current.backoff);
      attempt += 1;
      retryTimer = setTimeout(connect, delay);
    };

    async function fetchTicket() {
      const { baseUrl: base, getToken: tokenOf } = optionsRef.current;
      const token = tokenOf ? await tokenOf() : '';
      const headers = { 'Content-Type': 'application/json' };
      if (token) headers.Authorization = `Bearer ${token}`;
      const body = conversationRef.current ? { conversation_id: conversationRef.current } : {};
      const res = await fetch(`${(base || '').replace(/\/$/, '')}/api/agent/ticket`, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        credentials: 'same-origin',
      });
      const data = await res.json().catch(() => ({}));
      if (res.status === 401) return { stop: data.detail || 'Not authorized' };
      if (res.status === 404 && conversationRef.current) {
        // The conversation was deleted: start a fresh one.
        conversationRef.current = null;
        dispatch({ type: 'conversation_reset' });
        return { retry: true, now: true };
      }
      if (!res.ok || typeof data.ticket !== 'string') return { retry: true, detail: data.detail };
      return { ticket: data.ticket };
    }

    async function connect() {
      if (disposed) return;
      setStatus(attempt === 0 ? 'connecting' : 'reconnecting');
      let result;
      try {
        result = await fetchTicket();
      } catch {
        result = { retry: true };
      }
      if (disposed) return;
      if (result.stop) return stop(result.stop);
      if (result.now) return connect();
      if (!result.ticket) return scheduleReconnect();

      const socket = new WebSocket(wsUrl(optionsRef.current.baseUrl, result.ticket));
      socketRef.current = socket;
      socket.onopen = () => {
        if (disposed) return;
        attempt = 0;
        setStatus('open');
        setStopReason(null);
        pingTimer = setInterval(() => {
          if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'ping' }));
        }, optionsRef.current.pingIntervalMs);
      };
      socket.onmessage = (message) => {
        let event;
        try {
          event = JSON.parse(message.data);
        } catch {
          return;
        }
        if (event.type !== 'pong') dispatch({ type: 'server', event });
      };
      socket.onclose = (close) => {
        clearInterval(pingTimer);
        if (socketRef.current === socket) socketRef.current = null;
        if (disposed) return;
        dispatch({ type: 'connection_lost' });
        if (close.code === CLOSE_TICKET_STORE_DOWN) {
          stop(close.reason || 'Ticket auth not configured');
        } else {
          scheduleReconnect();
        }
      };
    }

    connect();
    return () => {
      disposed = true;
      clearTimeout(retryTimer);
      clearInterval(pingTimer);
      const socket = socketRef.current;
      socketRef.current = null;
      if (socket) socket.close(1000);
    };
  }, []);

  const sendJson = useCallback((value) => {
    const socket = socketRef.current;
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(value));
    return true;
  }, []);

  const send = useCallback(
    (text) => {
      const message = text.trim();
      if (!message) return false;
      const sent = sendJson({ type: 'chat', message, conversation_id: conversationRef.current || undefined });
      if (sent) dispatch({ type: 'user_sent', text: message });
      else dispatch({ type: 'notice', text: 'Not connected; your message was not sent.' });
      return sent;
    },
    [sendJson],
  );

  const confirm = useCallback(
    (operationId, confirmed) => {
      if (sendJson({ type: 'confirm', operation_id: operationId, confirmed })) {
        dispatch({ type: 'confirm_sent', operationId, confirmed });
      }
    },
    [sendJson],
  );

  const cancel = useCallback(() => sendJson({ type: 'cancel' }), [sendJson]);

  return {
    status,
    stopReason,
    messages: state.messages,
    notice: state.notice,
    conversationId: state.conversationId,
    busy: isBusy(state),
    send,
    confirm,
    cancel,
  };
}
