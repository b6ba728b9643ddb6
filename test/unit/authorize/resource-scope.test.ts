import { checkResourceScope, MAX_RESOURCE_LENGTH } from '../../../src/authorize/resource-scope';

const acme = { arg: 'path', prefix: 'acme/' };
const check = (path: unknown, rule = acme) => checkResourceScope({ path }, rule);

// Each trick must be refused: these are the ways a path argument tries to leave acme's area.
const refused: Array<[string, unknown]> = [
  ['plain climb to a sibling tenant', 'acme/../globex/secrets'],
  ['climb from a deeper directory', 'acme/reports/../../globex/x'],
  ['dot segment then climb', 'acme/./../globex'],
  ['trailing /.. lands on the parent of the prefix', 'acme/..'],
  ['climb above the root', '../acme/x'],
  ['encoded slash before climb (..%2f)', 'acme/..%2fglobex'],
  ['encoded dots (%2e%2e)', 'acme/%2e%2e/globex'],
  ['mixed-case escapes (%2E%2e%2F)', 'acme/%2E%2e%2Fglobex'],
  ['double-encoded dots (%252e%252e)', 'acme/%252e%252e/globex'],
  ['double-encoded slash (%252f)', 'acme/..%252fglobex'],
  ['dots encoded five times over', 'acme/%252525252e%252525252e/globex'],
  ['a single dot encoded five times over (too many layers to trust)', 'acme/%252525252e'],
  ['overlong UTF-8 dot (%c0%ae)', 'acme/%c0%ae%c0%ae/globex'],
  ['malformed escape (%zz)', 'acme/%zzx'],
  ['truncated escape at end (%2)', 'acme/x%2'],
  ['stray percent sign', 'acme/100%'],
  ['fullwidth dots and slash (．．／)', 'acme/．．／globex'],
  ['fullwidth percent escape (％２ｅ)', 'acme/％２ｅ％２ｅ/globex'],
  ['two-dot leader (‥) folds to ..', 'acme/‥/globex'],
  ['backslash climb', 'acme\\..\\globex'],
  ['fullwidth backslash climb (＼)', 'acme＼..＼globex'],
  ['encoded backslash climb (%5c)', 'acme%5c..%5cglobex'],
  ['division-slash lookalike (∕)', 'acme∕..∕globex'],
  ['NUL byte', 'acme/x\u0000.txt'],
  ['encoded NUL (%00)', 'acme/x%00.txt'],
  ['newline (log injection)', 'acme/x\nallow'],
  ['zero-width space', 'acme/\u200b../globex'],
  ['bidi override', 'acme/\u202etxt.exe'],
  ['absolute URL', 'http://evil.example/acme/x'],
  ['file URL', 'file:///etc/passwd'],
  ['Windows drive letter', 'C:\\acme\\x'],
  ['protocol-relative / UNC path', '//evil.example/acme/x'],
  ['absolute path when the prefix is relative', '/acme/x'],
  ['sibling whose name starts with the prefix (acme-evil)', 'acme-evil/x'],
  ['longer segment that starts with the prefix (acmex)', 'acmex'],
  ['prefix in a different case', 'ACME/x'],
  ['triple-dot segment (Windows trims to ..)', 'acme/.../globex'],
  ['dots and trailing space segment', 'acme/.. /globex'],
  ['empty string', ''],
  ['only separators', '///'],
  ['longer than the cap', `acme/${'a'.repeat(MAX_RESOURCE_LENGTH)}`],
  ['NFKC expansion beyond the cap', `acme/${'\ufdfa'.repeat(400)}`],
  ['missing argument', undefined],
  ['number instead of a string', 42],
  ['array instead of a string', ['acme/x']],
  ['object instead of a string', { toString: () => 'acme/x' }],
];

// Each of these stays inside acme's area; the value the tool gets is the normalised one.
const allowed: Array<[string, string, string]> = [
  ['a plain file under the prefix', 'acme/reports/q1.csv', 'acme/reports/q1.csv'],
  ['the prefix directory itself', 'acme/', 'acme/'],
  ['a climb that stays inside', 'acme/a/../b', 'acme/b'],
  ['dot segments and doubled slashes', 'acme//./reports///q1', 'acme/reports/q1'],
  ['encoded slash inside the prefix', 'acme%2Freports', 'acme/reports'],
  ['fullwidth letters fold to the prefix (ａｃｍｅ)', 'ａｃｍｅ/x', 'acme/x'],
  ['backslash as a separator', 'acme\\reports\\q1', 'acme/reports/q1'],
  ['double-encoded but inside', 'acme%252Freports', 'acme/reports'],
  ['unicode file name', 'acme/résumé.pdf', 'acme/résumé.pdf'],
  ['a dotfile', 'acme/.config', 'acme/.config'],
  ['a colon later in the path', 'acme/a:b', 'acme/a:b'],
];

describe('checkResourceScope refuses path tricks that leave the prefix', () => {
  test.each(refused)('%s', (_name, value) => {
    const result = check(value);
    expect(result.ok).toBe(false);
  });
});

describe('checkResourceScope allows and normalises paths that stay inside', () => {
  test.each(allowed)('%s', (_name, value, normalized) => {
    expect(check(value)).toEqual({ ok: true, normalized });
  });
});

describe('checkResourceScope prefix forms', () => {
  test('a prefix without a trailing slash means the whole segment', () => {
    const rule = { arg: 'path', prefix: 'acme' };
    expect(check('acme/x', rule)).toEqual({ ok: true, normalized: 'acme/x' });
    expect(check('acmex/y', rule).ok).toBe(false);
    expect(check('acme-evil', rule).ok).toBe(false);
  });

  test('a multi-segment prefix must match every segment', () => {
    const rule = { arg: 'key', prefix: 'tenants/acme/' };
    expect(checkResourceScope({ key: 'tenants/acme/a' }, rule)).toEqual({ ok: true, normalized: 'tenants/acme/a' });
    expect(checkResourceScope({ key: 'tenants/acme-evil/a' }, rule).ok).toBe(false);
    expect(checkResourceScope({ key: 'tenants/globex/a' }, rule).ok).toBe(false);
    expect(checkResourceScope({ key: 'tenants' }, rule).ok).toBe(false);
  });

  test('an absolute prefix accepts only absolute paths under it', () => {
    const rule = { arg: 'path', prefix: '/srv/acme/' };
    expect(check('/srv/acme/x', rule)).toEqual({ ok: true, normalized: '/srv/acme/x' });
    expect(check('srv/acme/x', rule).ok).toBe(false);
    expect(check('/srv/acme/../globex', rule).ok).toBe(false);
  });

  test('reads only the named argument, and only as an own property', () => {
    const inherited = Object.create({ path: 'acme/x' }) as Record<string, unknown>;
    expect(checkResourceScope(inherited, acme).ok).toBe(false);
    expect(checkResourceScope({ other: 'acme/x' }, acme).ok).toBe(false);
  });

  test('the reason never echoes the submitted value', () => {
    const result = check('acme/../globex/secret-name');
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.why).not.toContain('secret-name');
  });
});
