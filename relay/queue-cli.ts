import type { Command } from 'commander';
import type { Config } from '../src/config.js';
import { submitRequest } from './control.js';
import { headersOf } from './dsn.js';
import { HOST_QUEUE, ID_PATTERN, type QueuedMessage, Spool } from './spool.js';

/** "3m", "2h", "4d": an age for a terminal. */
function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

function listLine(m: QueuedMessage, now: number): string {
  const pending = m.recipients.filter((r) => r.state === 'pending').map((r) => r.address);
  const next = m.nextAttemptAt > now ? `next in ${age(m.nextAttemptAt - now)}` : 'due';
  const error = m.lastError ? `  (${m.lastError})` : '';
  return `${m.id}  ${m.queue}  ${m.size} B  ${age(now - m.receivedAt)} old  ${m.attempts} attempt(s), ${next}  <${m.from}> -> ${pending.join(', ')}${error}`;
}

/** `concierge queue list|flush|show|delete`, reading the spool of `--config`. */
export function registerQueueCommands(program: Command, load: (file: string) => Promise<Config>): void {
  const spoolOf = async (file: string): Promise<Spool> => {
    const config = await load(file);
    if (!config.relay) {
      process.stderr.write(`concierge: ${file} has no "relay" section, so no queue\n`);
      process.exit(1);
    }
    return new Spool(config.relay.spool);
  };
  const queueOf = (tenant: string | undefined) => (tenant === undefined ? undefined : tenant === 'host' ? HOST_QUEUE : tenant.toLowerCase());
  const queue = program.command('queue').description('the relay\'s per-tenant queues: list, flush, show, delete');

  queue
    .command('list')
    .description('messages waiting, oldest first')
    .requiredOption('-c, --config <file>', 'tenants.json with the relay section')
    .option('-t, --tenant <domain>', 'only this tenant\'s queue ("host" for the host\'s own mail)')
    .action(async (opts: { config: string; tenant?: string }) => {
      const spool = await spoolOf(opts.config);
      const messages = await spool.load({ queue: queueOf(opts.tenant) });
      const now = Date.now();
      for (const m of messages) process.stdout.write(`${listLine(m, now)}\n`);
      process.stdout.write(`${messages.length} message(s) queued${opts.tenant ? ` for ${opts.tenant}` : ''}\n`);
    });

  queue
    .command('flush')
    .description('ask the running relay to try every waiting message (of one tenant) now')
    .requiredOption('-c, --config <file>', 'tenants.json with the relay section')
    .option('-t, --tenant <domain>', 'only this tenant\'s queue ("host" for the host\'s own mail)')
    .action(async (opts: { config: string; tenant?: string }) => {
      const spool = await spoolOf(opts.config);
      const tenant = queueOf(opts.tenant);
      await submitRequest(spool.root, { action: 'flush', ...(tenant ? { tenant } : {}) });
      process.stdout.write(`flush requested${opts.tenant ? ` for ${opts.tenant}` : ''}: the running relay tries now (or at its next start)\n`);
    });

  queue
    .command('show')
    .description('one message: envelope, each recipient\'s state, headers')
    .argument('<id>', 'queue id (as in `queue list` and the 250 reply)')
    .requiredOption('-c, --config <file>', 'tenants.json with the relay section')
    .action(async (id: string, opts: { config: string }) => {
      const spool = await spoolOf(opts.config);
      const m = await spool.find(id.toUpperCase());
      if (!m) {
        process.stderr.write(`concierge: no queued message ${id}\n`);
        process.exit(1);
      }
      const lines = [
        `id:        ${m.id}`,
        `tenant:    ${m.queue}`,
        `from:      <${m.from}>`,
        `received:  ${new Date(m.receivedAt).toISOString()}`,
        `size:      ${m.size} B`,
        `attempts:  ${m.attempts}, next ${new Date(m.nextAttemptAt).toISOString()}`,
        'recipients:',
        ...m.recipients.map((r) => `  <${r.address}> ${r.state}${r.status ? ` ${r.status}` : ''}${r.diagnostic ? `: ${r.diagnostic}` : ''}`),
        '',
        headersOf(await spool.readBody(m).catch(() => Buffer.alloc(0))).replace(/\r\n/g, '\n'),
      ];
      process.stdout.write(`${lines.join('\n')}`);
    });

  queue
    .command('delete')
    .description('remove one message without delivering it (no bounce)')
    .argument('<id>', 'queue id')
    .requiredOption('-c, --config <file>', 'tenants.json with the relay section')
    .action(async (id: string, opts: { config: string }) => {
      const spool = await spoolOf(opts.config);
      const upper = id.toUpperCase();
      if (!ID_PATTERN.test(upper) || !(await spool.find(upper))) {
        process.stderr.write(`concierge: no queued message ${id}\n`);
        process.exit(1);
      }
      await submitRequest(spool.root, { action: 'delete', id: upper });
      process.stdout.write(`delete of ${upper} requested: the running relay removes it now (or at its next start)\n`);
    });
}
