/**
 * What makes a removal real: the MLS commit that removes every leaf of the
 * member, so that the removed member holds none of the next epoch's keys.
 * The server reads the commit (a PublicMessage: it cannot read a
 * PrivateMessage's proposals) and maps its leaf indexes to members through
 * the ratchet tree of the GroupInfo it keeps for the current epoch (a leaf's
 * basic credential names its user's DID). The API decodes both (src/mls);
 * this checks what they say.
 */
import { sql } from 'kysely'
import type { Db } from '../db/schema.js'
import { conflict, invalidRequest } from './errors.js'

/** What a member's removal commit shows in the clear. */
export interface RemovalCommit {
  senderLeaf: number
  removedLeaves: number[]
  otherProposals: string[]
  proposalReferences: number
}

/** The ratchet tree of the GroupInfo the server keeps, as far as a removal needs it. */
export type KeptTree =
  | {
      kind: 'tree'
      /** The epoch of the GroupInfo it came from. */
      epoch: number
      /** By leaf index: the user's DID, null for a blank leaf, '' for another credential. */
      identities: Array<string | null>
      /** The commit is signed by the key of its sender's leaf in this tree, over this epoch's group context. */
      commitSigned: boolean
    }
  /** No GroupInfo is kept for the current epoch. */
  | { kind: 'none' }
  /** The GroupInfo kept carries no readable ratchet tree. */
  | { kind: 'unreadable'; why: string }

/** The conversation's GroupInfo, if one is kept for its current epoch. */
export async function currentGroupInfo(
  db: Db,
  convoId: string,
): Promise<{ epoch: number; data: Uint8Array } | undefined> {
  const { rows } = await sql<{ epoch: number; data: Uint8Array }>`
    SELECT g.epoch, g.data FROM group_info g JOIN convo c ON c.id = g.convo_id AND c.epoch = g.epoch
    WHERE g.convo_id = ${convoId}`.execute(db)
  return rows[0]
}

const invalidCommit = (why: string) => invalidRequest('InvalidCommit', `commit: ${why}`)

const leavesOf = (identities: Array<string | null>, did: string) =>
  identities.flatMap((identity, leaf) => (identity === did ? [leaf] : []))

const listed = (leaves: number[], identities: Array<string | null>) =>
  leaves.map((leaf) => `${leaf} (${identities[leaf] || (identities[leaf] === null ? 'blank' : 'no DID')})`).join(', ')

/**
 * Checks that `commit`, sent by `caller` on the current epoch (`epoch`),
 * removes exactly every leaf of `target` and nothing else, by the tree the
 * server keeps. Refused: no tree kept for this epoch (409
 * GroupInfoUnavailable: a member stores one with updateGroupInfo, then the
 * removal is sent again), and a commit that is not the caller's, proposes
 * anything else or names proposals it does not carry (400 InvalidCommit).
 */
export function checkRemoval(
  commit: RemovalCommit,
  tree: KeptTree,
  args: { caller: string; target: string; epoch: number },
): void {
  if (tree.kind !== 'tree' || tree.epoch !== args.epoch) {
    const why =
      tree.kind === 'unreadable'
        ? `the GroupInfo kept for epoch ${args.epoch} has no readable ratchet tree (${tree.why})`
        : `no GroupInfo is kept for epoch ${args.epoch}`
    throw conflict(
      'GroupInfoUnavailable',
      `${why}: the server maps the leaves a removal commit removes to members through its ratchet tree. ` +
        'Store the GroupInfo of this epoch, with its ratchet tree (updateGroupInfo), then send the removal again',
    )
  }
  const { identities } = tree
  if (commit.proposalReferences > 0) {
    throw invalidCommit(
      `it names ${commit.proposalReferences} proposal(s) by reference; a removal commit carries its proposals by value, so that the server sees whom it removes`,
    )
  }
  if (commit.otherProposals.length > 0) {
    throw invalidCommit(
      `a removal commit carries Remove proposals only, not ${[...new Set(commit.otherProposals)].join(', ')}`,
    )
  }
  const sender = identities[commit.senderLeaf]
  if (sender !== args.caller) {
    throw invalidCommit(`it is sent from leaf ${listed([commit.senderLeaf], identities)}, not from one of yours`)
  }
  if (!tree.commitSigned) {
    throw invalidCommit(
      `its signature does not verify with the key of its sender's leaf (${commit.senderLeaf}) in the ratchet tree of epoch ${args.epoch}`,
    )
  }
  const targetLeaves = leavesOf(identities, args.target)
  const removed = [...new Set(commit.removedLeaves)].sort((a, b) => a - b)
  if (targetLeaves.length === 0) {
    throw invalidCommit(
      `${args.target} holds no leaf in the ratchet tree of epoch ${args.epoch}: there is nothing to remove`,
    )
  }
  if (removed.length !== targetLeaves.length || removed.some((leaf, i) => leaf !== targetLeaves[i])) {
    throw invalidCommit(
      `it removes leaves ${removed.length ? listed(removed, identities) : 'none'}; ${args.target} holds leaves ${targetLeaves.join(', ')}: ` +
        "a removal commit removes all of the member's leaves, and no other",
    )
  }
}
