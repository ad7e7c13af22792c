/** RFC 4616 PLAIN: `authzid NUL authcid NUL passwd`, base64-encoded on the wire. */
export interface PlainCredentials {
  readonly authzid: string;
  readonly authcid: string;
  readonly password: string;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Decodes a PLAIN response; undefined for anything malformed. Strings are latin1 (bytes kept). */
export function decodePlain(response: string): PlainCredentials | undefined {
  if (!BASE64.test(response) || response.length % 4 !== 0) return undefined;
  const parts = Buffer.from(response, 'base64').toString('latin1').split('\0');
  if (parts.length !== 3) return undefined;
  const [authzid, authcid, password] = parts as [string, string, string];
  if (authcid.length === 0 || password.length === 0) return undefined;
  return { authzid, authcid, password };
}

/** Encodes a PLAIN response with an empty authzid. */
export function encodePlain(authcid: string, password: string): string {
  return Buffer.from(`\0${authcid}\0${password}`, 'latin1').toString('base64');
}
