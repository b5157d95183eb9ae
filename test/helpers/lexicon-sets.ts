import { jsonToLex, Lexicons } from '@atproto/lexicon'
import { clientReferenceFixtureDir, referenceFixtureDir } from '../../scripts/refresh-reference-lexicons.js'
import { loadLexiconDocs } from '../../src/xrpc/lexicons.js'

/**
 * The two upstream lexicon sets real clients were generated from, as their
 * fixtures keep them: the seed-era set and the client-era set. The server
 * validates its answers against its own lexicons; these say whether a
 * client of either generation decodes them.
 */
const sets = {
  seedEra: new Lexicons(loadLexiconDocs(referenceFixtureDir)),
  clientEra: new Lexicons(loadLexiconDocs(clientReferenceFixtureDir)),
}

/** Throws unless `body` (an answer as JSON) is a valid output of `nsid` in the given set (each that has the method). */
export function assertOutputOf(set: keyof typeof sets, nsid: string, body: unknown): void {
  sets[set].assertValidXrpcOutput(nsid, jsonToLex(body))
}

/** Throws unless `input` (as JSON) is a valid input of `nsid` in the given set: what a client of it may send. */
export function assertInputOf(set: keyof typeof sets, nsid: string, input: unknown): void {
  sets[set].assertValidXrpcInput(nsid, jsonToLex(input))
}
