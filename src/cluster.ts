import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { type AdminServer, startAdmin } from './admin.js';
import type { Config } from './config.js';
import type { Logger } from './log.js';

/** A worker that dies sooner than this after its start is restarted after RESTART_BACKOFF_MS, not at once (no fork loop). */
const MIN_HEALTHY_LIFETIME_MS = 1_000;
const RESTART_BACKOFF_MS = 1_000;

/** How many worker processes `workers` asks for: "auto" is one per CPU the process may use. */
export function workerCount(workers: Config['workers']): number {
  return workers === 'auto' ? os.availableParallelism() : workers;
}

/** Whether this process is a worker of `concierge start` with workers > 1. */
export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

/** In a worker: answer the primary's /metrics requests with this registry (prom-client's cluster protocol). */
export function serveMetricsToPrimary(registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
  // The worker side of prom-client's protocol is installed by constructing an aggregator once.
  new AggregatorRegistry();
}

/** The primary of a multi-process instance. */
export interface Primary {
  readonly admin: AdminServer | undefined;
  /** Workers alive now. */
  workers(): Worker[];
}

/**
 * Runs the primary: forks `count` workers (each runs `concierge start` with the same arguments and
 * shares the listeners through node:cluster), restarts one that dies, forwards SIGHUP (each worker
 * re-reads the config) and SIGTERM / SIGINT (each drains; a second signal cuts), serves /metrics
 * summed over the workers and /healthz, and exits 0 once every worker has.
 */
export async function runPrimary(config: Config, count: number, logger: Logger): Promise<Primary> {
  let stopping = false;
  const startedAt = new Map<number, number>();
  let admin: AdminServer | undefined;
  const fork = () => {
    const worker = cluster.fork();
    startedAt.set(worker.id, Date.now());
    worker.once('online', () => logger.info('worker started', { worker: worker.id, pid: worker.process.pid }));
  };
  cluster.on('exit', (worker, code, signal) => {
    const lived = Date.now() - (startedAt.get(worker.id) ?? 0);
    startedAt.delete(worker.id);
    if (stopping) {
      logger.info('worker stopped', { worker: worker.id, pid: worker.process.pid, code });
      if (alive().length === 0) exit();
      return;
    }
    logger.error('worker died: restarting it', { worker: worker.id, pid: worker.process.pid, code, signal, livedMs: lived });
    if (lived >= MIN_HEALTHY_LIFETIME_MS) fork();
    else setTimeout(() => !stopping && fork(), RESTART_BACKOFF_MS);
  });
  for (let i = 0; i < count; i++) fork();

  const aggregator = new AggregatorRegistry();
  const metrics = { text: () => aggregator.clusterMetrics(), contentType: aggregator.contentType };
  const alive = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
  admin = config.admin ? await startAdmin(config.admin, metrics, () => !stopping && alive().length > 0, logger) : undefined;

  const exit = () => void Promise.resolve(admin?.close()).finally(() => process.exit(0));
  const forward = (signal: NodeJS.Signals) => {
    for (const worker of alive()) worker.process.kill(signal);
  };
  const stop = (signal: NodeJS.Signals) => {
    logger.info(stopping ? 'stopping now: forwarded to the workers' : 'stopping: forwarded to the workers', { signal, workers: alive().length });
    stopping = true;
    // Workers ignore SIGINT (a terminal's ^C reaches the whole process group): they hear SIGTERM from here.
    forward('SIGTERM');
    if (alive().length === 0) exit();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    logger.info('reload: forwarded to the workers', { workers: alive().length });
    forward('SIGHUP');
  });
  logger.info('primary started', { workers: count, pid: process.pid });
  return { admin, workers: alive };
}
