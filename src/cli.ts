#!/usr/bin/env node
import { rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Command, Option } from 'commander';
import { ConfigError, loadConfig } from './config.js';
import { TlsStore } from './tls.js';
import { loadConfigOffThread } from './config-off-thread.js';
import { isClusterWorker, runPrimary, serveMetricsToPrimary, workerCount } from './cluster.js';
import { startConcierge, type Concierge } from './concierge.js';
import { createLogger } from './log.js';
import { runDemo } from './demo.js';
import { serveInetd } from './inetd.js';
import { packageRoot } from './package-root.js';
import { TenantDirectory, type Protocol } from './tenants.js';
import { registerQueueCommands } from '../relay/queue-cli.js';

const program = new Command('concierge').description('Protocol-aware front proxy for shared hosting (POP3; FTP and SMTP to come)');

/** Prints a config problem list and exits 1; rethrows anything else. */
function exitOnConfigError(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
  throw err;
}

function fail(message: string): never {
  process.stderr.write(`concierge: ${message}\n`);
  process.exit(1);
}

/** Writes `pid` for `concierge reload`, and removes it when the process exits. */
function writePidFile(file: string): void {
  writeFileSync(file, `${process.pid}\n`);
  process.once('exit', () => rmSync(file, { force: true }));
}

/** SIGINT/SIGTERM close gracefully; SIGHUP re-reads the tenants (an invalid file keeps the running one). */
function handleSignals(concierge: Concierge, configFile: string, extra: () => Promise<void> = async () => {}): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      concierge.logger.warn('stopping now: logged-in sessions are cut', { signal });
      void concierge.close(0);
      return;
    }
    stopping = true;
    concierge.logger.info('stopping: logged-in sessions may finish (a second signal cuts them)', { signal });
    void Promise.all([concierge.close(), extra()]).then(() => process.exit(0));
  };
  // A worker hears SIGTERM from its primary; the SIGINT a terminal sends the whole group is the primary's to handle.
  process.on('SIGINT', () => (isClusterWorker() ? undefined : stop('SIGINT')));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGHUP', () => {
    loadConfigOffThread(configFile).then(
      async (config) => concierge.reloadTenants(config, await TlsStore.load(config, concierge.logger)),
      (err: unknown) => concierge.logger.error('reload refused, keeping the running tenants', { problems: err instanceof ConfigError ? err.problems : [String(err)] }),
    );
  });
}

program
  .command('start')
  .description('run the listeners of a config file')
  .requiredOption('-c, --config <file>', 'tenants.json to serve')
  .option('--pid-file <file>', 'write the process id here once listening (for `concierge reload`); removed on exit')
  .action(async (opts: { config: string; pidFile?: string }) => {
    const config = await loadConfig(opts.config).catch(exitOnConfigError);
    const workers = workerCount(config.workers);
    if (workers > 1 && !isClusterWorker()) {
      // The primary binds nothing itself: its workers share the listeners (node:cluster hands them the sockets).
      await runPrimary(config, workers, createLogger(config.log.level));
      if (opts.pidFile) writePidFile(opts.pidFile);
      return;
    }
    const concierge = await startConcierge(config, { serveAdmin: !isClusterWorker() });
    if (isClusterWorker()) serveMetricsToPrimary(concierge.metrics.registry);
    else if (opts.pidFile) writePidFile(opts.pidFile);
    handleSignals(concierge, opts.config);
  });

program
  .command('reload')
  .description('ask a running `concierge start --pid-file <file>` to re-read its config (SIGHUP)')
  .requiredOption('--pid-file <file>', 'the pid file the running instance wrote')
  .action(async (opts: { pidFile: string }) => {
    const text = await readFile(opts.pidFile, 'utf8').catch((err: Error) => fail(`cannot read ${opts.pidFile}: ${err.message}`));
    const pid = Number(text.trim());
    if (!Number.isInteger(pid) || pid <= 1) fail(`${opts.pidFile} holds no process id`);
    try {
      process.kill(pid, 'SIGHUP');
    } catch (err) {
      fail(`cannot signal process ${pid}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    process.stdout.write(`sent SIGHUP to ${pid}: the outcome is in its log (tenants reloaded, or reload refused)\n`);
  });

program
  .command('check')
  .description('validate a config file: every problem with its JSON path, exit status 1 on any')
  .requiredOption('-c, --config <file>', 'tenants.json to check')
  .action(async (opts: { config: string }) => {
    const config = await loadConfig(opts.config).catch(exitOnConfigError);
    await TlsStore.load(config).catch(exitOnConfigError);
    process.stdout.write(`${opts.config}: ok (${config.listeners.length} listener(s), ${config.tenants.length} tenant(s))\n`);
  });

program
  .command('route')
  .description('explain where a login would go, without connecting')
  .argument('<login>', 'login name, e.g. alice@a.example')
  .addOption(new Option('-p, --protocol <protocol>', 'protocol').choices(['pop3', 'ftp', 'smtp', 'imap']).default('pop3'))
  .requiredOption('-c, --config <file>', 'tenants.json to read')
  .option('-l, --local-address <ip>', 'the address the client dialled (for logins without a domain)')
  .action(async (login: string, opts: { protocol: Protocol; config: string; localAddress?: string }) => {
    const config = await loadConfig(opts.config).catch(exitOnConfigError);
    const decision = new TenantDirectory(config).explain(login, opts.protocol, opts.localAddress);
    if ('reason' in decision) {
      process.stdout.write(`${login} (${opts.protocol}): no route: ${decision.reason}\n  the client would get the same reply as for a wrong password\n`);
      process.exit(1);
    }
    const { route } = decision;
    const lines = [
      `${login} (${opts.protocol})`,
      `  tenant:          ${route.tenant.domain} (matched by ${route.matchedBy})`,
      `  backends:        ${route.backends.map((b) => `${b.host}:${b.port}`).join(', ')} (tried in this order)`,
      `  source address:  ${route.tenant.sourceAddress ?? '(any: no sourceAddress set)'}`,
      `  backend user:    ${route.backendUser} (backendUser: ${route.tenant.backendUser})`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  });

program
  .command('inetd')
  .description('serve the one connection on stdin (inetd, xinetd, systemd Accept=yes); logs go to stderr')
  .addOption(new Option('-p, --protocol <protocol>', 'protocol of the connection').choices(['pop3', 'ftp', 'smtp']).makeOptionMandatory())
  .requiredOption('-c, --config <file>', 'tenants.json: tenants, limits, and the settings of the first listener of that protocol')
  .action(async (opts: { protocol: Protocol; config: string }) => {
    const config = await loadConfig(opts.config).catch(exitOnConfigError);
    await serveInetd(config, opts.protocol);
    process.exit(0);
  });

program
  .command('demo', { isDefault: false })
  .description('run the embedded demo: the demo tenants with their own small POP3 backends')
  .option('-c, --config <file>', 'demo config', path.join(packageRoot(), 'tenants.json'))
  .action(async (opts: { config: string }) => {
    const config = await loadConfig(opts.config).catch(exitOnConfigError);
    const demo = await runDemo(config);
    process.stdout.write(demo.instructions);
    handleSignals(demo.concierge, opts.config, demo.stopBackends);
  });

registerQueueCommands(program, (file) => loadConfig(file).catch(exitOnConfigError));

program.parseAsync().catch((err: unknown) => {
  process.stderr.write(`concierge: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
