import type { ClientTls } from '../types.js';

/**
 * RFC 4217 §8–9: the data channel protection a client has asked for. PBSZ comes after AUTH TLS,
 * PROT after PBSZ; both may come before or after login, so the state lives with the session's
 * client TLS, which the login dialogue and the control relay share.
 */
export interface ProtectionState {
  pbsz: boolean;
  /** 'C' (clear, the RFC's default) or 'P' (private: TLS on every data connection). */
  prot: 'C' | 'P';
}

const states = new WeakMap<ClientTls, ProtectionState>();

/** The protection state of the session whose client TLS this is. */
export function protectionOf(tls: ClientTls): ProtectionState {
  let state = states.get(tls);
  if (!state) {
    state = { pbsz: false, prot: 'C' };
    states.set(tls, state);
  }
  return state;
}

/** A reply and whether it counts as a client mistake. */
export interface ProtectionReply {
  readonly text: string;
  readonly error?: string;
}

/** PBSZ: TLS has no protection buffer, so whatever the client proposes the answer is PBSZ=0 (RFC 4217 §8). */
export function answerPbsz(arg: string, tls: ClientTls, state: ProtectionState): ProtectionReply {
  if (!tls.active) return { text: '503 PBSZ needs AUTH TLS first.\r\n', error: 'PBSZ before AUTH TLS' };
  if (!/^\d{1,10}$/.test(arg.trim())) return { text: '501 PBSZ takes a decimal size.\r\n', error: 'PBSZ without a size' };
  state.pbsz = true;
  return { text: '200 PBSZ=0\r\n' };
}

/**
 * PROT: P and C only (S and E are RFC 2228 levels TLS does not have: 536). A listener with
 * requireProtP refuses C by policy (534), as RFC 4217 §9 lets a server do.
 * Returns the level to switch to when the reply is a 200.
 */
export function answerProt(arg: string, tls: ClientTls, state: ProtectionState): ProtectionReply & { level?: 'C' | 'P' } {
  if (!tls.active) return { text: '503 PROT needs AUTH TLS first.\r\n', error: 'PROT before AUTH TLS' };
  if (!state.pbsz) return { text: '503 PROT needs PBSZ first.\r\n', error: 'PROT before PBSZ' };
  const level = arg.trim().toUpperCase();
  if (level === 'P') return { text: '200 Protection level set to Private.\r\n', level: 'P' };
  if (level === 'C') {
    if (tls.requireProtP) return { text: '534 Data connections must be protected here: use PROT P.\r\n', error: 'PROT C where PROT P is required' };
    return { text: '200 Protection level set to Clear.\r\n', level: 'C' };
  }
  if (level === 'S' || level === 'E') return { text: '536 Only PROT P and PROT C are supported.\r\n' };
  return { text: '504 Unknown protection level.\r\n', error: 'PROT with an unknown level' };
}

/** RFC 4217 §9: a transfer whose data connection would be clear where the listener requires PROT P. */
export const PROT_P_REQUIRED = '521 Data connections must be protected: send PBSZ 0 and PROT P first.\r\n';
