/** RFC 3461 §4 parameters that MAIL takes (RET, ENVID) and that RCPT takes (NOTIFY, ORCPT). */
export const DSN_MAIL_PARAMS: ReadonlySet<string> = new Set(['RET', 'ENVID']);
export const DSN_RCPT_PARAMS: ReadonlySet<string> = new Set(['NOTIFY', 'ORCPT']);

/** RFC 3461 §4: xtext, printable ASCII with `+` and `=` (and anything else) as `+XX`. */
const XTEXT = /^(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})+$/;
/** RFC 3461 §4.4: an ENVID is at most 100 characters; §4.2: an ORCPT at most 500. */
const MAX_ENVID = 100;
const MAX_ORCPT = 500;
/** RFC 3461 §4: octets a RCPT line may grow by with NOTIFY and ORCPT (MAIL's RET and ENVID add less). */
export const DSN_LINE_EXTRA = 500;
const NOTIFY = /^(?:NEVER|(?:SUCCESS|FAILURE|DELAY)(?:,(?:SUCCESS|FAILURE|DELAY))*)$/i;

/** Why a DSN parameter's value is malformed, or undefined when it is well formed. */
export function dsnParamProblem(name: string, value: string | undefined): string | undefined {
  if (value === undefined) return `${name} without a value`;
  switch (name) {
    case 'RET':
      return /^(?:FULL|HDRS)$/i.test(value) ? undefined : 'RET neither FULL nor HDRS';
    case 'ENVID':
      return value.length <= MAX_ENVID && XTEXT.test(value) ? undefined : 'bad ENVID';
    case 'NOTIFY':
      return NOTIFY.test(value) ? undefined : 'bad NOTIFY';
    case 'ORCPT': {
      const semi = value.indexOf(';');
      return value.length <= MAX_ORCPT && /^[A-Za-z0-9-]+$/.test(value.slice(0, semi)) && XTEXT.test(value.slice(semi + 1)) ? undefined : 'bad ORCPT';
    }
    default:
      return `${name} is no DSN parameter`;
  }
}
