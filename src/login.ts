/** A login name split into its user part and (optional) domain part. */
export interface LoginName {
  readonly user: string;
  readonly domain: string | undefined;
}

/** Longest login name accepted (RFC 5321's 64-octet local part + '@' + 255-octet domain). */
export const MAX_LOGIN_NAME_LENGTH = 320;

const FORBIDDEN = /[\x00-\x20\x7f]/;

/**
 * Splits `alice@a.example` at the LAST occurrence of any configured separator
 * (a local part may itself contain '@' or '%', a domain never does).
 * Returns undefined for anything that must never reach a backend line:
 * control characters, spaces, empty parts, over-long names.
 */
export function parseLogin(name: string, separators: readonly string[]): LoginName | undefined {
  if (name.length === 0 || name.length > MAX_LOGIN_NAME_LENGTH || FORBIDDEN.test(name)) return undefined;
  let at = -1;
  let sepLength = 0;
  for (const sep of separators) {
    const i = name.lastIndexOf(sep);
    if (i > at) {
      at = i;
      sepLength = sep.length;
    }
  }
  if (at < 0) return { user: name, domain: undefined };
  const user = name.slice(0, at);
  const domain = name.slice(at + sepLength).toLowerCase();
  if (user.length === 0 || domain.length === 0) return undefined;
  return { user, domain };
}
