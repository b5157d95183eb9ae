/**
 * Welcome delivery, in two phases: fetched, then confirmed (or reported
 * failed and kept for a retry), per device the Welcome names.
 * Services: welcomes, membership.
 */
import { NSID } from '../../lexicon/types/index.js'
import confirmWelcome from './confirmWelcome.js'
import getWelcome from './getWelcome.js'
import invalidateWelcome from './invalidateWelcome.js'

export const welcomeHandlers = {
  [NSID.confirmWelcome]: confirmWelcome,
  [NSID.getWelcome]: getWelcome,
  [NSID.invalidateWelcome]: invalidateWelcome,
}
