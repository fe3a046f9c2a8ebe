// The chat transcript as a pure reducer over the server's events, so rendering and the hook stay
// simple and the event handling is testable without a browser.

export const initialChatState = {
  messages: [],
  conversationId: null,
  lastSequence: 0,
  notice: null,
};

let localIds = 0;
const nextId = (prefix) => `${prefix}-${Date.now().toString(36)}-${(localIds += 1)}`;

function newAssistant() {
  return {
    id: nextId('assistant'),
    role: 'assistant',
    text: '',
    thinking: '',
    tools: [],
    confirmation: null,
    status: 'streaming',
    error: null,
  };
}

/** Applies `fn` to the assistant message being streamed, creating one if none is. */
function withCurrent(state, fn) {
  const messages = state.messages.slice();
  let index = messages.length - 1;
  if (index < 0 || messages[index].role !== 'assistant' || messages[index].status !== 'streaming') {
    messages.push(newAssistant());
    index = messages.length - 1;
  }
  messages[index] = fn({ ...messages[index] });
  return { ...state, messages };
}

/** Marks a streaming answer as ended with `status` (if one is streaming). */
function endCurrent(state, status, extra = {}) {
  const last = state.messages[state.messages.length - 1];
  if (!last || last.role !== 'assistant' || last.status !== 'streaming') return state;
  const messages = state.messages.slice(0, -1).concat({ ...last, status, ...extra });
  return { ...state, messages };
}

function onServerEvent(state, event) {
  if (typeof event.sequence === 'number') {
    // Events are numbered per connection; a new connection starts again from 1.
    state = { ...state, lastSequence: event.sequence };
  }
  const meta = event.metadata || {};
  switch (event.type) {
    case 'text_delta':
      return withCurrent(state, (m) => ({ ...m, text: m.text + (event.content || '') }));
    case 'thinking_delta':
      return withCurrent(state, (m) => ({ ...m, thinking: m.thinking + (event.content || '') }));
    case 'tool_call_start':
      return withCurrent(state, (m) => ({
        ...m,
        tools: m.tools.concat({
          id: meta.tool_call_id || nextId('tool'),
          name: meta.tool_name || event.content || 'tool',
          arguments: meta.arguments ?? null,
          result: undefined,
          isError: false,
        }),
      }));
    case 'tool_result':
      return withCurrent(state, (m) => ({
        ...m,
        tools: m.tools.map((t) =>
          t.id === meta.tool_call_id ? { ...t, result: meta.result ?? event.content, isError: !!meta.is_error } : t,
        ),
      }));
    case 'confirmation_required':
      return withCurrent(state, (m) => ({
        ...m,
        confirmation: {
          operationId: meta.operation_id,
          riskLevel: meta.risk_level || 'high',
          message: event.content || 'Confirm this operation?',
          status: 'pending',
        },
      }));
    case 'done':
      return {
        ...endCurrent(state, 'done'),
        conversationId: meta.conversation_id || state.conversationId,
      };
    case 'cancelled':
      return endCurrent(state, 'cancelled');
    case 'error': {
      const content = event.content || 'Error';
      let ended = endCurrent(state, 'error', { error: content });
      if (ended === state) ended = { ...state, notice: content };
      // A deleted conversation cannot be continued: the next message starts a new one.
      return content === 'Conversation not found' ? { ...ended, conversationId: null } : ended;
    }
    default:
      return state;
  }
}

/** The reducer: server events, and what the user did. */
export function chatReducer(state, action) {
  switch (action.type) {
    case 'server':
      return onServerEvent(state, action.event);
    case 'user_sent':
      return {
        ...state,
        notice: null,
        messages: state.messages.concat({ id: nextId('user'), role: 'user', text: action.text }, newAssistant()),
      };
    case 'confirm_sent':
      return {
        ...state,
        messages: state.messages.map((m) =>
          m.confirmation && m.confirmation.operationId === action.operationId
            ? { ...m, confirmation: { ...m.confirmation, status: action.confirmed ? 'confirmed' : 'declined' } }
            : m,
        ),
      };
    case 'connection_lost':
      return endCurrent(state, 'error', { error: 'Connection lost' });
    case 'conversation_reset':
      return { ...state, conversationId: null };
    case 'notice':
      return { ...state, notice: action.text };
    default:
      return state;
  }
}

/** True while an answer is streaming. */
export function isBusy(state) {
  const last = state.messages[state.messages.length - 1];
  return !!last && last.role === 'assistant' && last.status === 'streaming';
}
