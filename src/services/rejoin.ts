import type { Db } from '../db/schema.js'
import { transact } from '../db/transaction.js'
import { sendCommit, type Commit, type StoredCommit } from './commits.js'
import { invalidRequest } from './errors.js'
import { settleByExternalCommit } from './pendingAdditions.js'

/**
 * A member whose device lost its MLS state rejoins by external commit
 * (RFC 9420 §12.4.3.2), built on the GroupInfo the server keeps.
 *
 * What the server checks: the caller is a current member on its list
 * (strangers and those who left are refused: joining is addMembers' job,
 * with a Welcome); the commit is an external commit (src/mls:
 * readExternalCommit) whose new leaf names the caller (basic credential,
 * its DID), so no one brings in a device under another name; and, like
 * every commit, that it is of the conversation's group and current epoch,
 * one winner per epoch, stored in sequence with the messages.
 *
 * What it cannot check, having no group secrets: that the commit is
 * cryptographically valid (its signature is over a GroupContext only
 * members hold; the members' clients verify it), that a Remove in it
 * removes the caller's old leaf and not someone else's (leaf indexes mean
 * something only in the ratchet tree: clients check that the removed leaf's
 * credential is the joiner's, RFC 9420 §12.4.3.2), and whether the
 * caller's device really lost its state (a member that rejoins needlessly
 * only replaces its own leaf). A member could do as much with an ordinary
 * commit, which the server cannot read at all.
 */
export async function rejoin(
  db: Db,
  args: {
    convoId: string
    caller: string
    commit: Commit
    joinerIdentity: string | undefined
    /** The caller's registered device whose key the joiner's leaf carries (deviceOfLeaf), if one does. */
    deviceId?: string | undefined
  },
): Promise<StoredCommit> {
  if (args.joinerIdentity !== args.caller) {
    throw invalidRequest(
      'InvalidCommit',
      'externalCommit: its new leaf must hold a basic credential whose identity is your DID (a member rejoins as itself)',
    )
  }
  const { deviceId } = args
  return transact(db, async (trx) => {
    const stored = await sendCommit(trx, { convoId: args.convoId, sender: args.caller, commit: args.commit })
    // A registered device of the caller joined: the conversation has it now.
    if (deviceId) await settleByExternalCommit(trx, { convoId: args.convoId, userDid: args.caller, deviceId })
    return stored
  })
}
