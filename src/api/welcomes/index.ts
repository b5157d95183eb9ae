/**
 * Welcome delivery, in two phases: fetched, then confirmed (or reported
 * failed and kept for a retry).
 * Services: welcomes.
 */
import { NSID } from '../../lexicon/types/index.js'
import confirmWelcome from './confirmWelcome.js'
import getWelcome from './getWelcome.js'

export const welcomeHandlers = {
  [NSID.confirmWelcome]: confirmWelcome,
  [NSID.getWelcome]: getWelcome,
}
