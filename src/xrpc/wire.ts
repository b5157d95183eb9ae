// The event stream handler's import; the wire encoding itself is src/lexicon/wire.ts.
export { toWireJson } from '../lexicon/wire.js'
