// ChatWidget: a self-contained chat panel over useChat. It renders streamed text, the thinking, tool
// calls with their results, and confirmation prompts with Confirm / Cancel buttons.

import { useEffect, useRef, useState } from 'react';
import { useChat } from './useChat.js';

const STATUS_TEXT = {
  connecting: 'Connecting…',
  open: 'Connected',
  reconnecting: 'Reconnecting…',
  stopped: 'Disconnected',
};

function ToolCall({ tool }) {
  const done = tool.result !== undefined;
  return (
    <div className={`sy-tool${tool.isError ? ' sy-tool-error' : ''}`} data-testid="tool-call" data-tool={tool.name}>
      <span className="sy-tool-name">🔧 {tool.name}</span>
      {tool.arguments != null && <code className="sy-tool-args">{JSON.stringify(tool.arguments)}</code>}
      <div className="sy-tool-result" data-testid="tool-result">
        {done ? `→ ${typeof tool.result === 'string' ? tool.result : JSON.stringify(tool.result)}` : 'running…'}
      </div>
    </div>
  );
}

function Confirmation({ confirmation, onAnswer }) {
  const pending = confirmation.status === 'pending';
  return (
    <div className={`sy-confirm sy-risk-${confirmation.riskLevel}`} data-testid="confirmation" role="alertdialog">
      <div className="sy-confirm-text">
        <strong>{confirmation.riskLevel.toUpperCase()} risk:</strong> {confirmation.message}
      </div>
      {pending ? (
        <div className="sy-confirm-buttons">
          <button type="button" onClick={() => onAnswer(confirmation.operationId, true)}>
            Confirm
          </button>
          <button type="button" onClick={() => onAnswer(confirmation.operationId, false)}>
            Cancel
          </button>
        </div>
      ) : (
        <div className="sy-confirm-answer" data-testid="confirmation-answer">
          {confirmation.status === 'confirmed' ? 'Confirmed' : 'Declined'}
        </div>
      )}
    </div>
  );
}

function AssistantMessage({ message, onAnswer }) {
  return (
    <div className={`sy-msg sy-assistant sy-${message.status}`} data-testid="assistant-message" data-status={message.status}>
      {message.thinking && (
        <details className="sy-thinking" data-testid="thinking">
          <summary>Thinking</summary>
          {message.thinking}
        </details>
      )}
      {message.tools.map((tool) => (
        <ToolCall key={tool.id} tool={tool} />
      ))}
      {message.confirmation && <Confirmation confirmation={message.confirmation} onAnswer={onAnswer} />}
      <div className="sy-text" data-testid="assistant-text">
        {message.text}
        {message.status === 'streaming' && <span className="sy-cursor">▍</span>}
      </div>
      {message.status === 'cancelled' && <div className="sy-meta">Stopped.</div>}
      {message.status === 'error' && <div className="sy-meta sy-error">{message.error}</div>}
    </div>
  );
}

/**
 * A chat panel.
 * @param {{baseUrl?: string, getToken: () => (string|Promise<string>), title?: string}} props
 */
export function ChatWidget({ baseUrl = '', getToken, title = 'Assistant', pingIntervalMs, backoff }) {
  const chat = useChat({ baseUrl, getToken, pingIntervalMs, backoff });
  const [draft, setDraft] = useState('');
  const endRef = useRef(null);

  useEffect(() => {
    endRef.current?.scrollIntoView?.({ block: 'end' });
  }, [chat.messages]);

  const submit = (event) => {
    event.preventDefault();
    if (chat.send(draft)) setDraft('');
  };

  return (
    <section className="sy-chat" aria-label={title}>
      <header className="sy-header">
        <span>{title}</span>
        <span className={`sy-status sy-status-${chat.status}`} data-testid="status" data-status={chat.status}>
          {STATUS_TEXT[chat.status] || chat.status}
          {chat.stopReason ? `: ${chat.stopReason}` : ''}
        </span>
      </header>
      <div className="sy-messages" data-testid="messages">
        {chat.messages.map((m) =>
          m.role === 'user' ? (
            <div key={m.id} className="sy-msg sy-user" data-testid="user-message">
              {m.text}
            </div>
          ) : (
            <AssistantMessage key={m.id} message={m} onAnswer={chat.confirm} />
          ),
        )}
        {chat.notice && (
          <div className="sy-notice" data-testid="notice">
            {chat.notice}
          </div>
        )}
        <div ref={endRef} />
      </div>
      <form className="sy-input" onSubmit={submit}>
        <textarea
          aria-label="Message"
          value={draft}
          maxLength={10000}
          rows={2}
          placeholder={chat.status === 'open' ? 'Ask something…' : 'Waiting for the connection…'}
          onChange={(e) => setDraft(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey) submit(e);
          }}
        />
        {chat.busy ? (
          <button type="button" onClick={chat.cancel}>
            Stop
          </button>
        ) : (
          <button type="submit" disabled={chat.status !== 'open' || !draft.trim()}>
            Send
          </button>
        )}
      </form>
    </section>
  );
}
