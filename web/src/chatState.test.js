import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff.js';
import { chatReducer, initialChatState, isBusy } from './chatState.js';

const apply = (state, ...events) =>
  events.reduce((s, event, i) => chatReducer(s, { type: 'server', event: { sequence: i + 1, ...event } }), state);

describe('chatReducer', () => {
  it('builds an answer from streamed events', () => {
    let s = chatReducer(initialChatState, { type: 'user_sent', text: 'hi' });
    expect(isBusy(s)).toBe(true);
    s = apply(
      s,
      { type: 'thinking_delta', content: 'Hmm' },
      { type: 'tool_call_start', content: 'search', metadata: { tool_call_id: 't1', tool_name: 'search', arguments: { q: 'hi' } } },
      { type: 'tool_result', metadata: { tool_call_id: 't1', tool_name: 'search', result: { n: 1 } } },
      { type: 'text_delta', content: 'Hello' },
      { type: 'text_delta', content: ' there' },
      { type: 'done', metadata: { conversation_id: 'c1', message_count: 2 } },
    );
    const answer = s.messages[1];
    expect(answer).toMatchObject({ role: 'assistant', text: 'Hello there', thinking: 'Hmm', status: 'done' });
    expect(answer.tools).toEqual([{ id: 't1', name: 'search', arguments: { q: 'hi' }, result: { n: 1 }, isError: false }]);
    expect(s.conversationId).toBe('c1');
    expect(s.lastSequence).toBe(6);
    expect(isBusy(s)).toBe(false);
  });

  it('tracks a confirmation and its answer', () => {
    let s = chatReducer(initialChatState, { type: 'user_sent', text: 'delete x' });
    s = apply(s, { type: 'confirmation_required', content: 'Delete x?', metadata: { operation_id: 'op1', risk_level: 'high' } });
    expect(s.messages[1].confirmation).toEqual({ operationId: 'op1', riskLevel: 'high', message: 'Delete x?', status: 'pending' });
    s = chatReducer(s, { type: 'confirm_sent', operationId: 'op1', confirmed: true });
    expect(s.messages[1].confirmation.status).toBe('confirmed');
  });

  it('ends an answer on cancel, error or a lost connection', () => {
    const start = chatReducer(initialChatState, { type: 'user_sent', text: 'x' });
    expect(apply(start, { type: 'cancelled', metadata: { reason: 'user' } }).messages[1].status).toBe('cancelled');
    const failed = apply(start, { type: 'error', content: 'boom', error_type: 'recoverable' });
    expect(failed.messages[1]).toMatchObject({ status: 'error', error: 'boom' });
    expect(chatReducer(start, { type: 'connection_lost' }).messages[1].status).toBe('error');
  });

  it('shows an error outside an answer as a notice, and forgets a deleted conversation', () => {
    let s = { ...initialChatState, conversationId: 'gone' };
    s = apply(s, { type: 'error', content: 'Conversation not found', error_type: 'validation_error' });
    expect(s.notice).toBe('Conversation not found');
    expect(s.conversationId).toBe(null);
  });
});

describe('backoffDelay', () => {
  it('grows exponentially with jitter and a ceiling', () => {
    const opts = { initialMs: 500, maxMs: 15000 };
    expect(backoffDelay(0, opts, () => 0)).toBe(250);
    expect(backoffDelay(0, opts, () => 1)).toBe(500);
    expect(backoffDelay(3, opts, () => 0)).toBe(2000);
    expect(backoffDelay(3, opts, () => 1)).toBe(4000);
    expect(backoffDelay(50, opts, () => 1)).toBe(15000);
    const spread = new Set(Array.from({ length: 20 }, () => backoffDelay(4, opts)));
    expect(spread.size).toBeGreaterThan(1);
  });
});
