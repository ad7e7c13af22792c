import { domainToASCII } from 'node:url';

/** A MAIL FROM / RCPT TO argument: the path between < and >, and its ESMTP parameters. */
export interface PathArg {
  /** Empty for the null reverse-path `<>`. */
  readonly address: string;
  /** The whole `FROM:<…>` / `TO:<…>` text as received, re-sent to the backend with kept parameters. */
  readonly params: ReadonlyMap<string, string | undefined>;
}

/** RFC 5321 §4.5.3.1.3: a path is at most 256 octets. */
const MAX_PATH = 256;
/** No spaces, controls, angle brackets or DEL inside a path (no source routes either). */
const PATH = /^[^\x00-\x20<>@\x7f][^\x00-\x20<>\x7f]*@(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[A-Za-z0-9:.]+\])$/;
/** With SMTPUTF8 offered (RFC 6531 §3.3): the domain may be U-labels too (checked by utf8Address). */
const PATH_UTF8 = /^[^\x00-\x20<>@\x7f][^\x00-\x20<>\x7f]*@(?:[^\x00-\x20<>@[\]\x7f]+|\[[A-Za-z0-9:.]+\])$/;
const PARAM = /^([A-Za-z0-9][A-Za-z0-9-]*)(?:=([\x21-\x3c\x3e-\x7e]+))?$/;
/** Most paths carry no parameters: they share one empty map. */
const NO_PARAMS: ReadonlyMap<string, string | undefined> = new Map();

/**
 * Parses `FROM:<a@b.example> SIZE=123` (keyword `FROM`) or `TO:<x@y.example>` (RFC 5321 §4.1.1.2-3).
 * A space after the colon is tolerated (common in the wild). Undefined when malformed.
 */
export function parsePath(arg: string, keyword: 'FROM' | 'TO', options: { utf8Domain?: boolean } = {}): PathArg | undefined {
  if (arg.slice(0, keyword.length + 1).toUpperCase() !== `${keyword}:`) return undefined;
  const rest = arg.slice(keyword.length + 1).trimStart();
  if (!rest.startsWith('<')) return undefined;
  const close = rest.indexOf('>');
  if (close < 0) return undefined;
  const address = rest.slice(1, close);
  if (address.length > MAX_PATH) return undefined;
  if (address !== '' && !(options.utf8Domain ? PATH_UTF8 : PATH).test(address)) return undefined;
  if (address === '' && keyword === 'TO') return undefined;
  const tail = rest.slice(close + 1);
  if (tail === '') return { address, params: NO_PARAMS };
  if (!tail.startsWith(' ')) return undefined;
  const params = new Map<string, string | undefined>();
  for (const word of tail.split(' ').filter((w) => w !== '')) {
    const m = PARAM.exec(word);
    if (!m) return undefined;
    params.set(m[1]!.toUpperCase(), m[2]);
  }
  return { address, params };
}

/** An EHLO / HELO argument: a domain or an address literal, nothing else. */
export function isHeloName(arg: string): boolean {
  return /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,253}[A-Za-z0-9_])?|\[[A-Za-z0-9:.]{2,60}\])$/.test(arg);
}

/** The domain of `local@domain`, lower-cased. */
export function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).toLowerCase();
}

/** RFC 5321 §4.5.3.1.1: a local part is at most 64 octets. */
const MAX_LOCAL = 64;
/** C1 controls and the Unicode line and paragraph separators: no place in an address. */
const UNWANTED = /[\u0080-\u009f\u2028\u2029]/;

/** Lines are latin1 strings: a UTF-8 octet shows as a character above 0x7f. */
export function isAscii(text: string): boolean {
  return !/[\x80-\xff]/.test(text);
}

/**
 * A path holding UTF-8 (RFC 6531 §3.3) as it is routed: well-formed UTF-8 without controls, a
 * local part of at most 64 octets, the domain's U-labels turned into A-labels (the tenant directory
 * holds ASCII domains). Undefined when any of that fails. The path itself is forwarded unchanged.
 */
export function utf8Address(address: string): string | undefined {
  const bytes = Buffer.from(address, 'latin1');
  const text = bytes.toString('utf8');
  // Malformed, overlong or surrogate sequences decode to U+FFFD and so do not encode back the same.
  if (!Buffer.from(text, 'utf8').equals(bytes) || UNWANTED.test(text)) return undefined;
  const at = address.lastIndexOf('@');
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (local.length > MAX_LOCAL) return undefined;
  if (isAscii(domain)) return address;
  const ascii = domainToASCII(Buffer.from(domain, 'latin1').toString('utf8'));
  return ascii === '' ? undefined : `${local}@${ascii}`;
}
