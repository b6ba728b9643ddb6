import { packageVersion } from '../../version';
import { openApiDocument } from './openapi';
import { policyJsonSchema } from './policy-schema';

/** The generated contract documents as committed under docs/ (scripts/contract-docs.sh writes them). */
export function contractDocuments(): Record<string, string> {
  const text = (value: unknown) => JSON.stringify(value, null, 2) + '\n';
  return {
    'docs/openapi.json': text(openApiDocument(packageVersion())),
    'docs/policy.schema.json': text(policyJsonSchema()),
  };
}
