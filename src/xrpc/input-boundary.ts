import type { FastifyRequest } from 'fastify'
import { invalidRequest } from './errors.js'

/**
 * Far deeper than any lexicon shape (a few levels), and shallow enough that
 * every recursive walk after this check (lexicon validation, jsonToLex, the
 * idempotency fingerprint) is safe from stack overflow.
 */
const MAX_JSON_DEPTH = 32

type Trail = Array<string | number>

/** `metadata.name`, `didList[2]`: how messages name a field. */
function fieldName(trail: Trail): string {
  return trail.reduce<string>(
    (name, key) => (typeof key === 'number' ? `${name}[${key}]` : name ? `${name}.${key}` : key),
    '',
  )
}

function checkString(value: string, trail: Trail): void {
  // Checked with includes and isWellFormed, not a regex, which is many times
  // slower on a ciphertext of megabytes.
  if (value.includes('\u0000')) {
    // PostgreSQL text cannot hold NUL: it would fail in SQL (a 500).
    throw invalidRequest(undefined, `${fieldName(trail)} must not contain NUL (U+0000) characters`)
  }
  if (!value.isWellFormed()) {
    // Not Unicode: node-pg would send U+FFFD in its place (the stored value
    // silently differs) and jsonb refuses it outright.
    throw invalidRequest(undefined, `${fieldName(trail)} must be valid Unicode: it holds an unpaired UTF-16 surrogate`)
  }
}

function isObjectWithPrototype(value: unknown): boolean {
  return value !== null && typeof value === 'object' && Object.hasOwn(value, 'prototype')
}

function check(value: unknown, trail: Trail): void {
  if (typeof value === 'string') return checkString(value, trail)
  if (typeof value === 'number') {
    // JSON numbers past 2^53 arrive rounded (9007199254740993 reads as
    // ...992), and 1e300 passes the lexicon's integer check. Safe integers
    // also fit the bigint columns every unbounded lexicon integer (epochs)
    // is stored in or compared with; narrower ones have lexicon maximums.
    if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
      throw invalidRequest(
        undefined,
        `${fieldName(trail)} must be an integer between ${Number.MIN_SAFE_INTEGER} and ${Number.MAX_SAFE_INTEGER}`,
      )
    }
    return
  }
  if (value === null || typeof value !== 'object') return
  if (trail.length >= MAX_JSON_DEPTH) {
    throw invalidRequest(
      undefined,
      `The request is nested more than ${MAX_JSON_DEPTH} levels deep (at ${fieldName(trail)})`,
    )
  }
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      trail.push(index)
      check(value[index], trail)
      trail.pop()
    }
    return
  }
  const object = value as Record<string, unknown>
  for (const key of Object.keys(object)) {
    trail.push(key)
    if (key === '__proto__') {
      // JSON.parse makes it a plain property, but copying the object by
      // assignment (as jsonToLex does) would set the copy's prototype.
      throw invalidRequest(undefined, `"__proto__" is not allowed as a property name (at ${fieldName(trail)})`)
    }
    if (key === 'constructor' && isObjectWithPrototype(object[key])) {
      // The other prototype-pollution shape, refused as Fastify's own parser
      // (secure-json-parse) does: code that merges or walks the object
      // would reach an object's prototype through obj.constructor.prototype.
      trail.push('prototype')
      throw invalidRequest(
        undefined,
        `"constructor.prototype" is not allowed as a property path (at ${fieldName(trail)})`,
      )
    }
    checkString(key, trail)
    check(object[key], trail)
    trail.pop()
  }
}

/**
 * The one input boundary: every query param and body passes here before
 * lexicon validation and before any query. Anything PostgreSQL could not
 * store, or JavaScript could not hold exactly, is refused with 400
 * InvalidRequest naming the field, so client input never becomes an SQL
 * error (a 500). Unknown fields are checked too: they end up in the
 * idempotency fingerprint and in logs.
 */
export function assertAcceptableInput(value: unknown): void {
  check(value, [])
}

type Done = (err: Error | null, body?: unknown) => void

/**
 * Fastify's JSON parser answers "__proto__" and "constructor.prototype" with
 * "Body is not valid JSON"; this one parses plainly (V8's JSON.parse does not
 * recurse, so depth is no danger here) and leaves the refusal, by name, to
 * assertAcceptableInput.
 */
export function parseJsonBody(_request: FastifyRequest, body: string, done: Done): void {
  if (body.length === 0) {
    done(invalidRequest(undefined, 'The body is empty; send a JSON object'))
    return
  }
  try {
    done(null, JSON.parse(body))
  } catch (err) {
    done(invalidRequest(undefined, `Body is not valid JSON: ${(err as Error).message}`))
  }
}
