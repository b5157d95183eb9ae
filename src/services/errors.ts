/**
 * What a service refuses, and why. Services know nothing of HTTP: the one
 * mapping in src/xrpc/errors.ts (`toXrpcError`) gives each kind its status.
 */
export type RefusalKind = 'invalid' | 'forbidden' | 'notFound' | 'conflict' | 'unavailable'

/** A request the domain refuses, named as the lexicons declare (no name: a plain invalid request). */
export class Refusal extends Error {
  constructor(
    readonly kind: RefusalKind,
    readonly error: string | undefined,
    message: string,
  ) {
    super(message)
    this.name = 'Refusal'
  }
}

export const invalidRequest = (error: string | undefined, message: string) => new Refusal('invalid', error, message)
export const forbidden = (error: string, message: string) => new Refusal('forbidden', error, message)
export const notFound = (error: string, message: string) => new Refusal('notFound', error, message)
export const conflict = (error: string, message: string) => new Refusal('conflict', error, message)
/** A service the answer depends on (not the database) could not answer. */
export const unavailable = (error: string, message: string) => new Refusal('unavailable', error, message)

/** Errors several services raise, with the names the lexicons declare. */
export const convoNotFound = () => notFound('ConvoNotFound', 'Conversation not found')
export const notMember = () => forbidden('NotMember', 'You are not a member of this conversation')
/** `why` completes "You are not an admin of this conversation: ...". */
export const notAdmin = (why: string) => forbidden('NotAdmin', `You are not an admin of this conversation: ${why}`)
export const epochMismatch = (current: number, given: number) =>
  conflict(
    'EpochMismatch',
    `The conversation is at epoch ${current}, not ${given}; fetch the missing commits and retry`,
  )
/** Group ids are clients' (up to 128 hex digits in the lexicons, any length in an MLS header): shown shortened. */
const shortHex = (hex: string) => (hex.length > 64 ? `${hex.slice(0, 64)}...` : hex)
/** A conversation's group id against a message's (lowercase hex); ids are stored as clients sent them. */
export function requireGroup(convoGroupId: string, messageGroupId: string): void {
  if (convoGroupId.toLowerCase() !== messageGroupId) {
    throw invalidRequest(
      'GroupMismatch',
      `The MLS message is for group ${shortHex(messageGroupId)}, not this conversation's group ${shortHex(convoGroupId.toLowerCase())}`,
    )
  }
}
