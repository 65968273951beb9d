import { describe, expect, it } from 'vitest';
import { ApiError } from '../src/api/define.ts';
import { createApiClient } from '../src/transport/client.ts';
import { createDispatcher } from '../src/transport/dispatcher.ts';
import { echoHandlers, echoMethods } from './fixtures/echo-api.ts';

function setup() {
  const seen: unknown[] = [];
  const internal: string[] = [];
  const dispatcher = createDispatcher(echoMethods, echoHandlers(seen), {
    onInternalError: (method) => internal.push(method),
  });
  return { seen, internal, dispatcher };
}

describe('dispatcher', () => {
  it('refuses a bad argument before the handler runs, naming the field', async () => {
    const { seen, dispatcher } = setup();
    const outcome = await dispatcher.call('notes.add', { title: 42 });
    expect(outcome).toMatchObject({ ok: false, error: { code: 'invalid-argument' } });
    expect(!outcome.ok && outcome.error.message).toMatch(/^notes\.add: title: /);
    const nested = await dispatcher.call('notes.add', { title: 'x', tags: ['a', 7] });
    expect(!nested.ok && nested.error.message).toContain('tags.1');
    expect(await dispatcher.call('notes.add', undefined)).toMatchObject({
      ok: false,
      error: { code: 'invalid-argument' },
    });
    expect(seen).toEqual([]);
  });

  it('hands the parsed argument (defaults applied) to the handler', async () => {
    const { seen, dispatcher } = setup();
    expect(await dispatcher.call('notes.add', { title: 'first' })).toEqual({
      ok: true,
      value: { id: 1, title: 'first' },
    });
    expect(seen).toEqual([{ title: 'first', tags: [] }]);
  });

  it('refuses unknown methods, including names on the prototype chain', async () => {
    const { seen, dispatcher } = setup();
    for (const name of ['notes.nope', 'toString', '__proto__', 'constructor', 42 as never]) {
      const outcome = await dispatcher.call(name, {});
      expect(outcome).toMatchObject({ ok: false, error: { code: 'unknown-method' } });
    }
    expect(seen).toEqual([]);
  });

  it('carries ApiError codes and messages unchanged', async () => {
    const { dispatcher } = setup();
    expect(await dispatcher.call('notes.get', { id: 9 })).toEqual({
      ok: false,
      error: { code: 'not-found', message: 'No note 9; add it first.' },
    });
  });

  it('turns any other failure into a generic internal error that leaks nothing', async () => {
    const { dispatcher, internal } = setup();
    const outcome = await dispatcher.call('notes.explode', {});
    expect(outcome).toMatchObject({ ok: false, error: { code: 'internal' } });
    const message = !outcome.ok ? outcome.error.message : '';
    expect(message).not.toMatch(/hunter2|secret|\/home|at /);
    expect(internal).toEqual(['notes.explode']);
  });

  it('refuses to send a result that is not a JSON value', async () => {
    const { dispatcher, internal } = setup();
    expect(await dispatcher.call('notes.binary', {})).toMatchObject({
      ok: false,
      error: { code: 'internal' },
    });
    expect(internal).toEqual(['notes.binary']);
  });

  it('returns no value for void methods', async () => {
    const { dispatcher } = setup();
    expect(await dispatcher.call('notes.clear', {})).toEqual({ ok: true });
  });
});

describe('api client', () => {
  it('calls through any send function and rebuilds ApiErrors', async () => {
    const { dispatcher } = setup();
    // A structured-clone hop, as Electron IPC would do, between client and dispatcher.
    const client = createApiClient<typeof echoMethods>(async (m, a) =>
      structuredClone(await dispatcher.call(m, structuredClone(a))),
    );
    expect(await client['notes.add']({ title: 'hello' })).toEqual({ id: 1, title: 'hello' });
    expect(await client['notes.get']({ id: 1 })).toEqual({ id: 1, title: 'hello' });
    const error = await client['notes.get']({ id: 5 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ code: 'not-found', message: 'No note 5; add it first.' });
    const bad = await client['notes.add']({ title: '' }).catch((e: unknown) => e);
    expect(bad).toMatchObject({ code: 'invalid-argument' });
    expect(await client['notes.clear']({})).toBeUndefined();
  });

  it('reports a lost transport as unavailable and a malformed reply as internal', async () => {
    const down = createApiClient<typeof echoMethods>(async () => {
      throw new Error('socket closed');
    });
    await expect(down['notes.clear']({})).rejects.toMatchObject({ code: 'unavailable' });
    const garbled = createApiClient<typeof echoMethods>(async () => ({ weird: true }) as never);
    await expect(garbled['notes.clear']({})).rejects.toMatchObject({ code: 'internal' });
  });

  it('is not mistaken for a promise', async () => {
    const client = createApiClient<typeof echoMethods>(async () => ({ ok: true }));
    expect(await Promise.resolve(client)).toBe(client);
  });
});
