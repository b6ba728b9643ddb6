import { parseJsonObject, selectField } from '../../../adapters/secret-field';

describe('picking the one value a tool call gets from an upstream secret', () => {
  const doc = { api_key: 'k-1', port: 5432, tls: true, nested: { a: 1 }, empty: null };

  test('with a field, only that value leaves; scalars become strings, objects JSON', () => {
    expect(selectField(doc, 'api_key')).toBe('k-1');
    expect(selectField(doc, 'port')).toBe('5432');
    expect(selectField(doc, 'tls')).toBe('true');
    expect(selectField(doc, 'nested')).toBe('{"a":1}');
  });

  test('a missing or null field is nothing, and prototype names never resolve', () => {
    for (const field of ['missing', 'empty', 'constructor', '__proto__', 'toString', 'hasOwnProperty']) expect(selectField(doc, field)).toBeUndefined();
    expect(selectField('plain text', 'api_key')).toBeUndefined();
    expect(selectField(['a'], '0')).toBeUndefined();
  });

  test('without a field: text as is, documents as JSON, nothing as nothing', () => {
    expect(selectField('plain text')).toBe('plain text');
    expect(JSON.parse(selectField(doc)!)).toEqual(doc);
    expect(selectField(undefined)).toBeUndefined();
    expect(selectField(null)).toBeUndefined();
  });

  test('SecretString JSON parses only to an object', () => {
    expect(parseJsonObject('{"a":"b"}')).toEqual({ a: 'b' });
    for (const text of ['not json', '"str"', '[1]', 'null', '42']) expect(parseJsonObject(text)).toBeUndefined();
  });
});
