import type { ListenerConfig } from './config.js';

/** First fd systemd passes (SD_LISTEN_FDS_START). */
const FIRST_FD = 3;

/**
 * Listening sockets passed by systemd socket activation (`LISTEN_FDS`, `LISTEN_PID`,
 * `LISTEN_FDNAMES`, see sd_listen_fds(3)), found for the configured listeners. A socket unit
 * names each socket with `FileDescriptorName=` (names are colon-separated, so they hold no
 * colon): a listener takes the fd named `<protocol>-<port>` (e.g. `pop3-110`) or, failing that,
 * `<protocol>`. Unnamed fds go to the listeners in config order.
 */
export class ActivatedSockets {
  private readonly fds: Array<{ fd: number; name: string; taken: boolean }> = [];

  constructor(env: NodeJS.ProcessEnv = process.env, pid = process.pid) {
    const count = Number(env.LISTEN_FDS ?? 0);
    if (!Number.isInteger(count) || count <= 0 || Number(env.LISTEN_PID) !== pid) return;
    const names = (env.LISTEN_FDNAMES ?? '').split(':');
    for (let i = 0; i < count; i++) this.fds.push({ fd: FIRST_FD + i, name: names[i] ?? '', taken: false });
  }

  get count(): number {
    return this.fds.length;
  }

  /** The fd for `listener`, or undefined when systemd passed none for it (it then binds itself). */
  take(listener: ListenerConfig): number | undefined {
    const full = `${listener.protocol}-${listener.port}`;
    const named = (n: string) => this.fds.find((f) => !f.taken && f.name === n);
    const unnamed = () => this.fds.find((f) => !f.taken && (f.name === '' || f.name === 'unknown'));
    const found = named(full) ?? named(listener.protocol) ?? unnamed();
    if (!found) return undefined;
    found.taken = true;
    return found.fd;
  }
}
