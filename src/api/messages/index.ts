/**
 * Messages: storing an MLS message (application, proposal or commit) in its
 * conversation's gap-free sequence, and reading them back in order.
 * Services: messages, commits, membership.
 */
import { NSID } from '../../lexicon/types/index.js'
import getMessages from './getMessages.js'
import sendMessage from './sendMessage.js'

export const messageHandlers = {
  [NSID.getMessages]: getMessages,
  [NSID.sendMessage]: sendMessage,
}
