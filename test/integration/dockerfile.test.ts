import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBuilt, ROOT } from '../support/built-cli';

/**
 * There is no container engine on CI, so the image's contract is tested from the Dockerfile itself: its
 * runtime stage's ENTRYPOINT + CMD is run verbatim against the built tree (the repository root standing
 * in for WORKDIR, a temp dir for the data-dir volume), in a network namespace of its own (`unshare -n`,
 * so the image's fixed port is free whatever else runs here), and its HEALTHCHECK command is run in that
 * same namespace until the broker is ready. Static checks cover what only an engine would show.
 */

interface Stage {
  from: string;
  name: string | undefined;
  lines: Array<{ instruction: string; args: string }>;
}

/** The Dockerfile's stages, with continuation lines joined and comments dropped. */
function parseDockerfile(text: string): Stage[] {
  const logical = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of logical) {
    const [, instruction, args] = /^(\S+)\s+(.*)$/.exec(line) ?? [];
    if (!instruction) continue;
    if (instruction.toUpperCase() === 'FROM') {
      const [from, as, name] = args!.split(/\s+/);
      stages.push({ from: from!, name: as?.toUpperCase() === 'AS' ? name : undefined, lines: [] });
    } else stages.at(-1)?.lines.push({ instruction: instruction.toUpperCase(), args: args! });
  }
  return stages;
}

const one = (stage: Stage, instruction: string) => stage.lines.filter((l) => l.instruction === instruction).map((l) => l.args);
const execForm = (args: string) => JSON.parse(args) as string[];

function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const args of one(stage, 'ENV')) for (const [, key, value] of args.matchAll(/(\w+)=(\S+)/g)) env[key!] = value!;
  return env;
}

const stages = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const runtime = stages.at(-1)!;

describe('the Dockerfile', () => {
  it('builds in stages and ships production dependencies only', () => {
    expect(stages.map((s) => s.name)).toEqual(['deps', 'build', 'runtime']);
    const [deps, build] = stages;
    expect(one(deps!, 'RUN').join(' ')).toMatch(/npm ci --omit=dev/);
    expect(one(build!, 'RUN').join(' ')).toMatch(/npm run build/);
    const copies = one(runtime, 'COPY');
    expect(copies).toContain('--from=deps /app/node_modules node_modules');
    // The runtime never sees the build stage's node_modules (dev dependencies) or the sources.
    expect(copies.filter((c) => c.startsWith('--from=build')).map((c) => c.split(' ')[1])).toEqual(['/app/package.json', '/app/dist']);
  });

  it('runs as an unprivileged user, with the data dir a volume that user owns', () => {
    expect(one(runtime, 'USER')).toEqual(['node']);
    const env = envOf(runtime);
    expect(env.BULKHEAD_DATA_DIR).toBe('/var/lib/bulkhead');
    expect(execForm(one(runtime, 'VOLUME')[0]!)).toEqual([env.BULKHEAD_DATA_DIR]);
    expect(one(runtime, 'RUN').join(' ')).toMatch(/chown node:node \/var\/lib\/bulkhead/);
  });

  it('health-checks /readyz with node (the image has no curl), in exec form', () => {
    const [healthcheck] = one(runtime, 'HEALTHCHECK');
    const command = execForm(healthcheck!.slice(healthcheck!.indexOf('CMD ') + 4));
    expect(command[0]).toBe('node');
    expect(command.join(' ')).toMatch(/\/readyz/);
    expect(command.join(' ')).not.toMatch(/curl|wget/);
  });

  it('ENTRYPOINT + CMD, run verbatim on the built tree, serves /readyz to the HEALTHCHECK and stops on SIGTERM', async () => {
    ensureBuilt();
    const command = [...execForm(one(runtime, 'ENTRYPOINT')[0]!), ...execForm(one(runtime, 'CMD')[0]!)];
    expect(command.slice(0, 2)).toEqual(['node', 'dist/src/cli/main.js']);
    const [, , ...health] = execForm(one(runtime, 'HEALTHCHECK')[0]!.replace(/^.*?CMD /, ''));
    const dataDir = await mkdtemp(join(tmpdir(), 'bh-image-data-'));
    const env = { PATH: process.env.PATH!, ...envOf(runtime), BULKHEAD_DATA_DIR: dataDir };
    // `node` resolves on PATH as in the image; loopback is brought up inside the new network namespace.
    const broker = spawn('unshare', ['-n', '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', ...command], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    broker.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      const healthcheck = () => spawnSync('nsenter', [`--net=/proc/${broker.pid}/ns/net`, '--', process.execPath, '-e', ...health], { env, encoding: 'utf8' });
      let healthy = false;
      for (let attempt = 0; attempt < 100 && !healthy && broker.exitCode === null; attempt++) {
        healthy = healthcheck().status === 0;
        if (!healthy) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect({ healthy, stderr: healthy ? '' : stderr }).toEqual({ healthy: true, stderr: '' });
      broker.kill('SIGTERM');
      const [code] = await once(broker, 'exit');
      expect(code).toBe(0);
      // The broker wrote its state into the volume only (its demo policy's keys and credentials).
      expect(readFileSync(join(dataDir, 'demo-credentials.json'), 'utf8')).toMatch(/"server"/);
    } finally {
      if (broker.exitCode === null) broker.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 180_000);
});
