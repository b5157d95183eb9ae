import { conflict, forbidden, invalidRequest, notFound } from '../xrpc/errors.js'

/** Errors several services raise, with the names the lexicons declare. */
export const convoNotFound = () => notFound('ConvoNotFound', 'Conversation not found')
export const notMember = () => forbidden('NotMember', 'You are not a member of this conversation')
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
export const tooLarge = (what: string, max: number) =>
  invalidRequest(undefined, `${what} is larger than the ${max} bytes allowed`)
