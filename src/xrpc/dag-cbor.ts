/**
 * DAG-CBOR encoding of an event's body, written straight into one buffer.
 * @atproto/lex-cbor (cborg) builds a token per value and sorts each map's
 * entries by their encoded keys, which made a third of what a live event
 * allocated. This writes the plain data events are made of (null, booleans,
 * safe integers, strings, bytes, arrays, plain objects) as the very bytes
 * lex-cbor makes, and hands anything else (a CID, a Map, a float, undefined)
 * to lex-cbor whole, which encodes it or refuses it as it always did.
 */
import { encode as lexEncode, type LexValue } from '@atproto/lex-cbor'

const MAJOR_UINT = 0
const MAJOR_NEGINT = 1 << 5
const MAJOR_BYTES = 2 << 5
const MAJOR_STRING = 3 << 5
const MAJOR_ARRAY = 4 << 5
const MAJOR_MAP = 5 << 5
const FALSE = 0xf4
const TRUE = 0xf5
const NULL = 0xf6
const TWO_32 = 2 ** 32

/** A value this encoder leaves to lex-cbor. */
class NotPlain extends Error {}
const notPlain = new NotPlain()

/**
 * DAG-CBOR's map order (RFC 7049's canonical order): shorter keys first,
 * then by their bytes. For ASCII keys their UTF-16 order is their bytes'.
 */
function byKeyOrder(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0)
}

function byUtf8KeyOrder(a: string, b: string): number {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length - y.length || Buffer.compare(x, y)
}

const isAscii = (key: string): boolean => {
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) > 0x7f) return false
  return true
}

/** Maps this small are sorted in place by insertion: Array.prototype.sort allocates a work array each time. */
const SMALL_MAP = 16

/** Sorts a map's keys into DAG-CBOR's order. */
function sortKeys(keys: string[]): void {
  const order = keys.every(isAscii) ? byKeyOrder : byUtf8KeyOrder
  if (keys.length > SMALL_MAP) {
    keys.sort(order)
    return
  }
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i] as string
    let j = i - 1
    for (; j >= 0 && order(keys[j] as string, key) > 0; j--) keys[j + 1] = keys[j] as string
    keys[j + 1] = key
  }
}

/** The buffer's size to start with, and the most it keeps between events (a rare large one does not stay). */
const INITIAL_BYTES = 16 * 1024
const KEPT_BYTES = 1024 * 1024

class Writer {
  buf = Buffer.allocUnsafe(INITIAL_BYTES)
  at = 0

  reserve(bytes: number): void {
    if (this.at + bytes <= this.buf.length) return
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + bytes))
    this.buf.copy(grown, 0, 0, this.at)
    this.buf = grown
  }

  /** A head: major type and argument, in its shortest form. */
  head(major: number, n: number): void {
    this.reserve(9)
    const { buf } = this
    if (n < 24) buf[this.at++] = major | n
    else if (n < 0x100) {
      buf[this.at++] = major | 24
      buf[this.at++] = n
    } else if (n < 0x10000) {
      buf[this.at++] = major | 25
      buf.writeUInt16BE(n, this.at)
      this.at += 2
    } else if (n < TWO_32) {
      buf[this.at++] = major | 26
      buf.writeUInt32BE(n, this.at)
      this.at += 4
    } else {
      buf[this.at++] = major | 27
      buf.writeUInt32BE(Math.floor(n / TWO_32), this.at)
      buf.writeUInt32BE(n % TWO_32, this.at + 4)
      this.at += 8
    }
  }

  string(s: string): void {
    const length = Buffer.byteLength(s)
    this.head(MAJOR_STRING, length)
    this.reserve(length)
    this.at += this.buf.write(s, this.at)
  }

  value(v: unknown): void {
    switch (typeof v) {
      case 'string':
        return this.string(v)
      case 'number':
        if (!Number.isSafeInteger(v)) throw notPlain
        return v >= 0 ? this.head(MAJOR_UINT, v) : this.head(MAJOR_NEGINT, -1 - v)
      case 'boolean':
        this.reserve(1)
        this.buf[this.at++] = v ? TRUE : FALSE
        return
      case 'object':
        if (v === null) {
          this.reserve(1)
          this.buf[this.at++] = NULL
          return
        }
        if (v instanceof Uint8Array) {
          this.head(MAJOR_BYTES, v.byteLength)
          this.reserve(v.byteLength)
          this.buf.set(v, this.at)
          this.at += v.byteLength
          return
        }
        if (Array.isArray(v)) {
          this.head(MAJOR_ARRAY, v.length)
          for (const item of v as unknown[]) this.value(item)
          return
        }
        return this.map(v)
      default:
        throw notPlain
    }
  }

  map(v: object): void {
    const proto: unknown = Object.getPrototypeOf(v)
    if (proto !== Object.prototype && proto !== null) throw notPlain
    const record = v as Record<string, unknown>
    // Undefined properties are left out, as lex-cbor leaves them.
    const keys = Object.keys(record)
    let defined = 0
    for (const key of keys) if (record[key] !== undefined) keys[defined++] = key
    keys.length = defined
    sortKeys(keys)
    this.head(MAJOR_MAP, keys.length)
    for (const key of keys) {
      this.string(key)
      this.value(record[key])
    }
  }
}

const writer = new Writer()

/**
 * `value` in DAG-CBOR, as lex-cbor's `encode` has it. The bytes are a view of
 * a buffer the next call writes over: copy them before encoding again.
 */
export function encodeTransient(value: LexValue): Uint8Array {
  if (writer.buf.length > KEPT_BYTES) writer.buf = Buffer.allocUnsafe(INITIAL_BYTES)
  writer.at = 0
  try {
    writer.value(value)
  } catch (err) {
    if (err !== notPlain) throw err
    return lexEncode(value)
  }
  return writer.buf.subarray(0, writer.at)
}
