import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A certificate and its key as files, with the PEM text of the certificate. */
export interface IssuedCertificate {
  readonly cert: string;
  readonly key: string;
  readonly pem: string;
}

/**
 * A throw-away certificate authority in a temporary folder, made with the openssl CLI at test
 * time: nothing that expires is committed. P-256 keys: generated in milliseconds.
 */
export class TestCa {
  private serial = 0;
  private constructor(
    readonly dir: string,
    readonly certFile: string,
    private readonly keyFile: string,
    readonly pem: string,
  ) {}

  static async create(name = 'Concierge Test CA'): Promise<TestCa> {
    const dir = await mkdtemp(path.join(tmpdir(), 'concierge-ca-'));
    const certFile = path.join(dir, 'ca.pem');
    const keyFile = path.join(dir, 'ca.key');
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    return new TestCa(dir, certFile, keyFile, await readFile(certFile, 'utf8'));
  }

  /** A leaf certificate for `names` (DNS names; IP addresses become IP SANs). `expired`: valid until yesterday. */
  async issue(names: readonly string[], options: { expired?: boolean } = {}): Promise<IssuedCertificate> {
    const base = path.join(this.dir, `leaf-${++this.serial}`);
    const [cert, key, csr, ext] = [`${base}.pem`, `${base}.key`, `${base}.csr`, `${base}.ext`];
    const sans = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
    await writeFile(ext, `subjectAltName=${sans}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
    await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${names[0]}`]);
    await run('openssl', ['x509', '-req', '-in', csr, '-CA', this.certFile, '-CAkey', this.keyFile, '-CAcreateserial', '-out', cert, '-days', options.expired ? '-1' : '2', '-extfile', ext]);
    return { cert, key, pem: await readFile(cert, 'utf8') };
  }

  remove(): Promise<void> {
    return rm(this.dir, { recursive: true, force: true });
  }
}
