import { cidForLex, decode, encode, type LexValue } from '@atproto/lex-cbor'
import { describe, expect, it } from 'vitest'
import { encodeTransient } from '../../src/xrpc/dag-cbor.js'

/** The encoder's bytes, copied (the next call writes over them). */
const encoded = (value: LexValue) => Buffer.from(encodeTransient(value))

const sameAsLexCbor = (value: LexValue) =>
  expect(encoded(value).toString('hex')).toBe(Buffer.from(encode(value)).toString('hex'))

// Every length form of a head: immediate, 1, 2, 4 and 8 bytes, and the edges between them.
const INTEGERS = [0, 1, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER]

describe('encodeTransient: DAG-CBOR as @atproto/lex-cbor encodes it', () => {
  it('encodes integers of every length form, positive and negative, as lex-cbor does', () => {
    for (const n of INTEGERS) {
      sameAsLexCbor(n)
      sameAsLexCbor(-n)
      if (Number.isSafeInteger(-n - 1)) sameAsLexCbor(-n - 1)
    }
  })

  it('encodes strings, bytes, arrays and maps of every length form, and the simple values', () => {
    for (const length of [0, 23, 24, 255, 256, 65_536]) {
      sameAsLexCbor('a'.repeat(length))
      sameAsLexCbor(new Uint8Array(length).fill(7))
      sameAsLexCbor(Buffer.alloc(length, 9))
      sameAsLexCbor(Array.from({ length: Math.min(length, 300) }, (_, i) => i))
      sameAsLexCbor(Object.fromEntries(Array.from({ length: Math.min(length, 300) }, (_, i) => [`k${i}`, i])))
    }
    for (const value of [
      null,
      true,
      false,
      'é',
      '日本語',
      '🙂 emoji',
      { a: [] },
      [{}],
      { nested: { deeper: [1, 'x'] } },
    ])
      sameAsLexCbor(value)
  })

  it('orders map keys as DAG-CBOR does: by encoded length, then by bytes, non-ASCII keys included', () => {
    sameAsLexCbor({ zz: 1, a: 2, b: 3, aaa: 4, B: 5, '': 6 })
    // UTF-16 puts U+FF5E before U+1F642; UTF-8 bytes put it after (EF BD BE against F0 9F 99 82), and é is 2 bytes.
    sameAsLexCbor({ '\uff5e': 1, '🙂': 2, é: 3, ab: 4, a: 5 })
    sameAsLexCbor(Object.assign(Object.create(null) as object, { b: 1, a: 2 }) as LexValue)
  })

  it('leaves out undefined properties, as lex-cbor does', () => {
    const withUndefined = { a: 1, gone: undefined, b: 'x' } as unknown as LexValue
    sameAsLexCbor(withUndefined)
    expect(decode(encoded(withUndefined))).toEqual({ a: 1, b: 'x' })
  })

  it('encodes a message event body as it goes on the wire, and reads back as it was', () => {
    const body = {
      cursor: '281474976710657,562949953421315',
      message: {
        id: '3f6c2b8e-5b1a-4c2d-9a8b-7c6d5e4f3a2b',
        convoId: 'a1b2c3d4e5f60718293a4b5c6d7e8f90',
        sender: 'did:plc:ewvi7nxzyoun6zhxrhs64oiz',
        ciphertext: Buffer.from('00010002deadbeef', 'hex'),
        epoch: 12,
        seq: 70_000,
        createdAt: '2026-12-08T02:35:02.123Z',
        messageType: 'app',
      },
    }
    sameAsLexCbor(body)
    expect(decode(encoded(body))).toEqual({
      ...body,
      message: { ...body.message, ciphertext: new Uint8Array(body.message.ciphertext) },
    })
  })

  it('hands what is not plain data to lex-cbor: a CID is encoded as it encodes one, a float or undefined refused as it refuses them', async () => {
    const cid = await cidForLex({ a: 1 })
    sameAsLexCbor({ link: cid } as unknown as LexValue)
    for (const bad of [{ n: 1.5 }, [undefined], undefined, { n: Number.MAX_SAFE_INTEGER + 1 }]) {
      expect(() => encodeTransient(bad as unknown as LexValue)).toThrow()
      expect(() => encode(bad as unknown as LexValue)).toThrow()
    }
  })

  it('writes each call over the last: what was encoded before is copied out first', () => {
    const first = encodeTransient({ a: 'first' })
    const copy = Buffer.from(first)
    encodeTransient({ a: 'other' })
    expect(decode(copy)).toEqual({ a: 'first' })
  })
})
