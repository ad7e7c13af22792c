import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** VSFTPD overrides it: a private copy (`dpkg-deb -x` of the package) where the system one is not installed. */
export const VSFTPD = process.env.VSFTPD ?? '/usr/sbin/vsftpd';
/** Source of the readiness probes, so a test can tell them from real clients in vsftpd's log. */
export const PROBE_ADDRESS = '127.0.0.99';

/** A private vsftpd (anonymous, read-only) on a high port with a throwaway config and its own passive range. */
export interface Vsftpd {
  readonly port: number;
  readonly dir: string;
  /** vsftpd's protocol log: each line names the client address it saw. */
  log(): Promise<string>;
  stop(): Promise<void>;
}

/** Waits until something accepts on 127.0.0.1:port (vsftpd has no readiness signal); probes come from PROBE_ADDRESS. */
async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`vsftpd exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1', localAddress: PROBE_ADDRESS });
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`vsftpd did not listen on ${port}`);
}

/** Starts vsftpd serving `files` under /pub to anonymous users (USER anonymous, then any password). */
/**
 * `tls`: vsftpd offers AUTH TLS and requires it (logins and data) of anonymous users too, with
 * its default require_ssl_reuse=YES: a data connection must resume the control connection's session.
 */
export async function startVsftpd(options: { port: number; pasv: { min: number; max: number }; files: Record<string, Buffer | string>; tls?: { cert: string; key: string } }): Promise<Vsftpd> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'concierge-vsftpd-'));
  const root = path.join(dir, 'root');
  await mkdir(path.join(root, 'pub'), { recursive: true });
  await mkdir(path.join(dir, 'empty'));
  for (const [name, content] of Object.entries(options.files)) await writeFile(path.join(root, 'pub', name), content);
  // vsftpd refuses an anonymous root the anonymous user could write to.
  await chmod(root, 0o555);
  const logFile = path.join(dir, 'vsftpd.log');
  const config = [
    'listen=YES',
    'listen_ipv6=NO',
    'listen_address=127.0.0.1',
    `listen_port=${options.port}`,
    'background=NO',
    'run_as_launching_user=YES',
    'anonymous_enable=YES',
    'no_anon_password=NO',
    `anon_root=${root}`,
    'local_enable=NO',
    'write_enable=NO',
    'pasv_enable=YES',
    `pasv_min_port=${options.pasv.min}`,
    `pasv_max_port=${options.pasv.max}`,
    'pasv_address=127.0.0.1',
    // Defaults kept on purpose: pasv_promiscuous=NO and port_promiscuous=NO make vsftpd accept data
    // only from, and connect only to, the control connection's address.
    'seccomp_sandbox=NO',
    `secure_chroot_dir=${path.join(dir, 'empty')}`,
    'xferlog_enable=NO',
    `vsftpd_log_file=${logFile}`,
    'dual_log_enable=YES',
    'log_ftp_protocol=YES',
    'connect_from_port_20=NO',
    ...(options.tls
      ? ['ssl_enable=YES', `rsa_cert_file=${options.tls.cert}`, `rsa_private_key_file=${options.tls.key}`, 'allow_anon_ssl=YES', 'force_anon_logins_ssl=YES', 'force_anon_data_ssl=YES', 'require_ssl_reuse=YES']
      : []),
  ];
  const configFile = path.join(dir, 'vsftpd.conf');
  await writeFile(configFile, `${config.join('\n')}\n`);
  const child = spawn(VSFTPD, [configFile], { stdio: 'ignore' });
  child.on('error', () => {});
  try {
    await waitForPort(options.port, child);
  } catch (err) {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    port: options.port,
    dir,
    log: () => readFile(logFile, 'utf8').catch(() => ''),
    async stop() {
      const exited = child.exitCode === null ? once(child, 'exit') : Promise.resolve();
      child.kill('SIGTERM');
      await exited;
      await chmod(root, 0o755).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}
