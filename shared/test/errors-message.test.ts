// The one way a caught value becomes a sentence, whatever was thrown.
import { describe, expect, it } from 'vitest';
import { errorMessage } from '../src/errors/message.ts';

describe('errorMessage', () => {
  it("reads an Error's message and turns anything else thrown into text", () => {
    expect(errorMessage(new TypeError('not a function'))).toBe('not a function');
    expect(errorMessage('plain string')).toBe('plain string');
    expect(errorMessage(42)).toBe('42');
    expect(errorMessage(undefined)).toBe('undefined');
    expect(errorMessage(null)).toBe('null');
  });

  it("adds the cause's message only when asked and only when the cause is an Error", () => {
    const failed = new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED') });
    expect(errorMessage(failed)).toBe('fetch failed');
    expect(errorMessage(failed, { withCause: true })).toBe('fetch failed (connect ECONNREFUSED)');
    const odd = new Error('outer', { cause: 'a string cause' });
    expect(errorMessage(odd, { withCause: true })).toBe('outer');
  });
});
