import { foldKey } from '../../../src/authorize/fold-key';
import { findShadowingKey } from '../../../src/authorize/shadowed-fields';

describe('foldKey folds every spelling a consumer might read as the same field', () => {
  it.each([
    ['PATH', 'path'],
    ['ｐａｔｈ', 'path'],
    ['ＰＡＴＨ', 'path'],
    ['pa\u200Dth', 'path'],
    ['pa\u200Cth', 'path'],
    ['pa\u200Bth', 'path'],
    ['\uFEFFpath', 'path'],
    ['pa\u00ADth', 'path'],
    ['pa\u3164th', 'path'],
    ['path\uFE0F', 'path'],
    ['pa\u0301th', 'path'],
    ['pa\u034Fth', 'path'],
    ['path ', 'path'],
    ['path\u00A0', 'path'],
    ['pa_th', 'path'],
    ['p-a-t-h', 'path'],
    ['\u212Aey', 'key'],
    ['\u017Fort', 'sort'],
    ['reg\u0131on', 'region'],
    ['REG\u0130ON', 'region'],
    ['\uFB01le', 'file'],
    ['tenantId', 'tenantid'],
    ['Tenant-ID', 'tenantid'],
  ])('%j folds to %j', (key, folded) => {
    expect(foldKey(key)).toBe(folded);
  });

  it.each([
    ['paths', 'path'],
    ['tidy', 'tid'],
    ['region2', 'region'],
  ])('%j stays apart from %j', (a, b) => {
    expect(foldKey(a)).not.toBe(foldKey(b));
  });
});

describe('findShadowingKey', () => {
  it('finds a second spelling of a field, but not the field itself', () => {
    expect(findShadowingKey({ path: 'a', PATH: 'b' }, 'path')).toBe('PATH');
    expect(findShadowingKey({ Path: 'a' }, 'path')).toBe('Path');
    expect(findShadowingKey({ path: 'a', paths: 'b' }, 'path')).toBeNull();
    expect(findShadowingKey({}, 'path')).toBeNull();
  });

  it('looks at the top level only (nested objects are not the resource or an injected field)', () => {
    expect(findShadowingKey({ path: 'a', filter: { PATH: 'b' } }, 'path')).toBeNull();
  });
});
