import { describeError, notReady, READY, type Readiness } from '../observability/readiness';
import type { KeyRing } from './key-ring';

/** Authorize answers with a signed call context and tokens are signed: without a usable key, nobody is served. */
export function signingKeyReadiness(keyRing: Pick<KeyRing, 'signingKey' | 'verificationKey' | 'jwks'>): Readiness {
  try {
    const { kid } = keyRing.signingKey();
    if (!keyRing.verificationKey(kid)) return notReady('the current signing key does not verify (the key ring is inconsistent)');
    if (!keyRing.jwks().keys.some((key) => key.kid === kid)) return notReady('the current signing key is not published in the JWKS');
    return READY;
  } catch (err) {
    return notReady(`no usable signing key: ${describeError(err)}`);
  }
}
