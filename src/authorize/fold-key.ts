/**
 * The one folding of argument keys, used wherever a key is compared with a name the broker cares about
 * (tenant keys, the resource argument, injected fields). Two keys that fold alike may be read as the
 * same field by some consumer behind the broker, so the broker treats them as the same field too.
 *
 * It folds what consumers fold and what attackers vary:
 * - NFKC: fullwidth ｐａｔｈ, ligatures, the Kelvin sign K, the long s ſ;
 * - case, as upper-then-lower so that dotless ı and dotted İ land on i, as Go's encoding/json (which
 *   matches field names case-insensitively, with ToUpper(ToLower(r))) also lands them;
 * - combining marks (after NFKD), default-ignorable and format characters (zero-width space and
 *   joiners, soft hyphen, variation selectors, Hangul fillers), white space, and the "_"/"-" separators
 *   that naming conventions add or drop (tenant_id, tenantId, tenant-id).
 * It folds more than any one consumer does: a false match costs an odd call a deny, a missed one lets a
 * second spelling of a checked field through.
 */
const IGNORED_IN_KEYS = /[\p{M}\p{Default_Ignorable_Code_Point}\p{Cf}\p{White_Space}_-]/gu;

export function foldKey(key: string): string {
  return key.normalize('NFKC').toUpperCase().toLowerCase().normalize('NFKD').replace(IGNORED_IN_KEYS, '');
}
