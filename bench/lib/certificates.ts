/**
 * The TLS material of a POP3S run, made with the openssl CLI at run time (the test suite's
 * TestCa: a throwaway CA and P-256 leaf certificates; nothing committed that expires). One
 * server certificate serves every TLS endpoint: the demo backend or dovecot and each Concierge.
 */
import { readFile } from 'node:fs/promises';
import tls from 'node:tls';
import { TestCa } from '../../test/support/certificates.js';
import { removeDirOnCleanup } from './cleanup.js';

/** The name the clients ask for (SNI) and verify; Concierge's TLS backend dial uses it too. */
export const SERVER_NAME = 'pop.bench.test';

export interface BenchTls {
  /** The server's certificate chain and key (PEM files). */
  readonly cert: string;
  readonly key: string;
  /** The CA that signed it (PEM file): what clients and Concierge's backend dial trust. */
  readonly caFile: string;
  /**
   * What the load generator passes to tls.connect: verification on, against the bench CA. The
   * CA goes in one SecureContext made here: given as `ca`, tls.connect would build a context
   * (parse the PEM, fill an X509 store) on every connection, and the generator would pay that.
   */
  readonly client: tls.ConnectionOptions;
}

export async function makeBenchTls(): Promise<BenchTls> {
  const ca = await TestCa.create('Concierge bench CA');
  removeDirOnCleanup(ca.dir);
  const leaf = await ca.issue([SERVER_NAME, '127.0.0.1']);
  return {
    cert: leaf.cert,
    key: leaf.key,
    caFile: ca.certFile,
    client: { secureContext: tls.createSecureContext({ ca: await readFile(ca.certFile) }), servername: SERVER_NAME, rejectUnauthorized: true },
  };
}
