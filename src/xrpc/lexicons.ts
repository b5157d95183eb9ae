import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { Lexicons, type LexiconDoc, type LexXrpcProcedure, type LexXrpcQuery } from '@atproto/lexicon'
import { lexiconsDir } from '../paths.js'

export type XrpcMethodDef = LexXrpcQuery | LexXrpcProcedure

export interface XrpcMethod {
  nsid: string
  def: XrpcMethodDef
  /** Writes whose input declares `idempotencyKey` take part in idempotent replay. */
  acceptsIdempotencyKey: boolean
}

export function loadLexiconDocs(dir = lexiconsDir): LexiconDoc[] {
  return readdirSync(dir)
    .filter((file) => file.endsWith('.json'))
    .sort()
    .map((file) => JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as LexiconDoc)
}

export function loadLexicons(dir = lexiconsDir): Lexicons {
  return new Lexicons(loadLexiconDocs(dir))
}

/**
 * Every query and procedure the lexicons define: each becomes a route. A
 * subscription (a WebSocket event stream, subscribeConvoEvents) is not one.
 */
export function xrpcMethods(lexicons: Lexicons): XrpcMethod[] {
  const methods: XrpcMethod[] = []
  for (const doc of lexicons) {
    const def = doc.defs.main
    if (def?.type !== 'query' && def?.type !== 'procedure') continue
    const inputSchema = def.type === 'procedure' ? def.input?.schema : undefined
    const acceptsIdempotencyKey = inputSchema?.type === 'object' && 'idempotencyKey' in (inputSchema.properties ?? {})
    methods.push({ nsid: doc.id, def, acceptsIdempotencyKey })
  }
  return methods
}
