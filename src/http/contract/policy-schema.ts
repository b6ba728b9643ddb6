import { policySchema } from '../../policy/schema';
import { jsonSchemaOf } from './openapi';

/**
 * A JSON Schema (2020-12) of the policy file for editors (YAML language servers, VS Code), generated from
 * the zod schema the loader validates with: what a person may write (durations as "15m" or milliseconds,
 * defaults optional). Cross-references (a tool naming an unknown credential) are checked only by
 * `bulkhead policy check`; a schema cannot express them. Written to docs/policy.schema.json.
 */
export function policyJsonSchema(): Record<string, unknown> {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'Bulkhead policy file',
    description: 'Validated at load; unknown keys are errors. References between sections are checked by `bulkhead policy check FILE`.',
    ...jsonSchemaOf(policySchema, 'input'),
  };
}
