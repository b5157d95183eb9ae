import type { Nsid } from '../lexicon/types/index.js'
import type { Handler } from '../xrpc/types.js'
import { convoHandlers } from './convos/index.js'
import { eventHandlers } from './events/index.js'
import { keyPackageHandlers } from './keyPackages/index.js'
import { messageHandlers } from './messages/index.js'
import { welcomeHandlers } from './welcomes/index.js'

/** The handler of each NSID, by feature (all of them: a method added to the lexicons must be handled). */
export const handlers = {
  ...convoHandlers,
  ...messageHandlers,
  ...welcomeHandlers,
  ...keyPackageHandlers,
  ...eventHandlers,
} satisfies { [N in Nsid]: Handler<N> }
