/**
 * Chat requests: this server has no mailbox for them (conversations start
 * with createConvo and a Welcome), so the reads the client makes answer
 * truthfully that there are none; the methods that would need the mailbox
 * (sending, accepting, declining, settings) answer 501.
 */
import { NSID } from '../../lexicon/types/index.js'
import getRequestCount from './getRequestCount.js'
import listChatRequests from './listChatRequests.js'

export const requestHandlers = {
  [NSID.getRequestCount]: getRequestCount,
  [NSID.listChatRequests]: listChatRequests,
}
