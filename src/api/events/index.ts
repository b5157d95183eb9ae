/**
 * Live events: a member's conversations as a stream, resumable by cursor
 * (replay, then live, with no gap and no duplicate).
 * Services: eventLog, membership; src/events (the hub and the outbox).
 */
import { NSID } from '../../lexicon/types/index.js'
import streamConvoEvents from './streamConvoEvents.js'

export const eventHandlers = {
  [NSID.streamConvoEvents]: streamConvoEvents,
}
