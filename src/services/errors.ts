import { conflict, forbidden, invalidRequest, notFound } from '../xrpc/errors.js'

/** Errors several services raise, with the names the lexicons declare. */
export const convoNotFound = () => notFound('ConvoNotFound', 'Conversation not found')
export const notMember = () => forbidden('NotMember', 'You are not a member of this conversation')
export const epochMismatch = (current: number, given: number) =>
  conflict(
    'EpochMismatch',
    `The conversation is at epoch ${current}, not ${given}; fetch the missing commits and retry`,
  )
export const tooLarge = (what: string, max: number) =>
  invalidRequest(undefined, `${what} is larger than the ${max} bytes allowed`)
