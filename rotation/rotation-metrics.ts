import type { Gauge } from 'prom-client';
import type { Clock } from '../src/clock';
import type { BrokerMetrics } from '../src/observability/metrics';
import type { KeyStatus } from '../src/tokens/key-ring';
import type { ServerCertificateStatus } from './certificates';

/**
 * Rotation state on /metrics: key and certificate ages and seconds to the next rotation. Ages change
 * every second, so the gauges are filled in when scraped (prom-client calls a gauge's `collect` before
 * reading it) rather than pushed on a timer that would always lag. Labels are bounded enums
 * (`state`, `kind`): no tenant, and no key id either.
 */

export interface RotationMetricSources {
  clock: Clock;
  keys: () => KeyStatus[];
  nextKeyRotationAt: () => number | undefined;
  serverCertificate?: () => ServerCertificateStatus | undefined;
  /** When the CA certificate was issued (internal CA only). */
  caIssuedAt?: () => number | undefined;
}

type RotationGauges = Pick<BrokerMetrics, 'keyAgeSeconds' | 'nextRotationSeconds' | 'certificateAgeSeconds'>;

function onScrape<T extends string>(gauge: Gauge<T>, fill: () => void): void {
  Object.assign(gauge, {
    collect() {
      gauge.reset();
      try {
        fill();
      } catch {
        // A ring not loaded yet: leave the gauge empty rather than fail the whole scrape.
      }
    },
  });
}

export function bindRotationMetrics(metrics: RotationGauges, sources: RotationMetricSources): void {
  const seconds = (ms: number) => Math.round(ms) / 1000;
  const now = () => sources.clock.now();

  onScrape(metrics.keyAgeSeconds, () => {
    // Several retired keys may still verify; the youngest of each state is the one to watch.
    const youngest = new Map<string, number>();
    for (const key of sources.keys()) youngest.set(key.state, Math.min(youngest.get(key.state) ?? Infinity, key.ageMs));
    for (const [state, ageMs] of youngest) metrics.keyAgeSeconds.set({ state }, seconds(ageMs));
  });

  onScrape(metrics.nextRotationSeconds, () => {
    const keyAt = sources.nextKeyRotationAt();
    if (keyAt !== undefined) metrics.nextRotationSeconds.set({ kind: 'signing_key' }, seconds(Math.max(0, keyAt - now())));
    const cert = sources.serverCertificate?.();
    if (cert) metrics.nextRotationSeconds.set({ kind: 'server_certificate' }, seconds(Math.max(0, cert.renewAt - now())));
  });

  onScrape(metrics.certificateAgeSeconds, () => {
    const cert = sources.serverCertificate?.();
    if (cert) metrics.certificateAgeSeconds.set({ kind: 'server' }, seconds(now() - cert.issuedAt));
    const caAt = sources.caIssuedAt?.();
    if (caAt) metrics.certificateAgeSeconds.set({ kind: 'ca' }, seconds(now() - caAt));
  });
}
