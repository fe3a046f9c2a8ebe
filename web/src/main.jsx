// The demo page: paste a user JWT (kept in this tab's sessionStorage, never in a URL), then chat.
// With REQUIRE_AUTH=false on the server, connect with an empty token.

import { StrictMode, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { ChatWidget } from './ChatWidget.jsx';
import './styles.css';

const STORAGE_KEY = 'switchyard-demo-jwt';

function DemoPage() {
  const [draft, setDraft] = useState(() => sessionStorage.getItem(STORAGE_KEY) || '');
  const [token, setToken] = useState(null);

  const connect = (event) => {
    event.preventDefault();
    sessionStorage.setItem(STORAGE_KEY, draft.trim());
    setToken(draft.trim());
  };

  return (
    <main className="sy-demo">
      <h1>Switchyard chat demo</h1>
      {token === null ? (
        <form className="sy-token" onSubmit={connect}>
          <label htmlFor="jwt">User JWT</label>
          <textarea id="jwt" rows={4} value={draft} onChange={(e) => setDraft(e.target.value)} placeholder="eyJhbGciOi…" />
          <button type="submit">Connect</button>
        </form>
      ) : (
        <>
          <ChatWidget getToken={() => token} />
          <button type="button" className="sy-link" onClick={() => setToken(null)}>
            Use another token
          </button>
        </>
      )}
    </main>
  );
}

createRoot(document.getElementById('root')).render(
  <StrictMode>
    <DemoPage />
  </StrictMode>,
);
