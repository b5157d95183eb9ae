import type { LexXrpcParameters } from '@atproto/lexicon'
import { InvalidRequestError } from '@atproto/xrpc-server'

type ParamValue = string | number | boolean
type Primitive = 'string' | 'integer' | 'boolean'

function decodeOne(name: string, type: Primitive, raw: string): ParamValue {
  switch (type) {
    case 'integer':
      // Strict: "12abc" or "" is an error, not a silent 12 or 0. The range
      // is the input boundary's to check (src/xrpc/input-boundary.ts).
      if (!/^-?\d+$/.test(raw)) {
        throw new InvalidRequestError(`Parameter "${name}" must be an integer`)
      }
      return Number(raw)
    case 'boolean':
      if (raw !== 'true' && raw !== 'false') {
        throw new InvalidRequestError(`Parameter "${name}" must be "true" or "false"`)
      }
      return raw === 'true'
    default:
      return raw
  }
}

/**
 * Turns a query string into typed lexicon params: integers and booleans are
 * parsed strictly, array params accept repeated keys (`dids=a&dids=b`), and
 * a scalar param given twice is refused. Unknown params are ignored, as
 * XRPC servers do. Lexicon constraints are checked afterwards.
 */
export function decodeQueryParams(
  def: LexXrpcParameters | undefined,
  query: URLSearchParams,
): Record<string, ParamValue | ParamValue[]> {
  const out: Record<string, ParamValue | ParamValue[]> = {}
  for (const [name, prop] of Object.entries(def?.properties ?? {})) {
    const values = query.getAll(name)
    if (values.length === 0) continue
    if (prop.type === 'array') {
      out[name] = values.map((v) => decodeOne(name, prop.items.type as Primitive, v))
    } else if (values.length > 1) {
      throw new InvalidRequestError(`Parameter "${name}" must be given once`)
    } else {
      out[name] = decodeOne(name, prop.type as Primitive, values[0] as string)
    }
  }
  return out
}
