/**
 * Live events: a member's conversations as a stream, resumable by cursor
 * (replay, then live, with no gap and no duplicate), over Server-Sent Events
 * or a WebSocket opened with a ticket.
 * Services: eventLog, membership, tickets; src/events (the hub and the outbox).
 */
import { NSID } from '../../lexicon/types/index.js'
import type { SubscriptionHandlers } from '../../xrpc/websocket.js'
import getSubscriptionTicket from './getSubscriptionTicket.js'
import streamConvoEvents from './streamConvoEvents.js'
import subscribeConvoEvents from './subscribeConvoEvents.js'

export const eventHandlers = {
  [NSID.getSubscriptionTicket]: getSubscriptionTicket,
  [NSID.streamConvoEvents]: streamConvoEvents,
}

/** The WebSocket subscriptions, by NSID. */
export const subscriptionHandlers: SubscriptionHandlers = {
  'blue.catbird.mls.subscribeConvoEvents': subscribeConvoEvents,
}
