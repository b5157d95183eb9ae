import type { EventRef, Segment } from '../services/eventLog.js'

/**
 * Positions in the event stream. Event ids (`message.event_id`, an identity
 * column) are dense on one PostgreSQL, but a Citus node numbers the rows it
 * inserts from its own range, (group << 48) + 1, so ids come from several
 * ranges that advance independently. A position is therefore one watermark
 * per range: in range r, every id up to `watermark.get(r)` is behind it. A
 * range it does not name is behind it up to the range's start (nothing of
 * it). On one PostgreSQL there is one range, and a position is one id.
 * Ids are JS numbers, exact up to 2^53: node groups up to 31.
 */
export type Watermark = Map<number, number>

const RANGE_SIZE = 2 ** 48
/** More ranges than any cluster has nodes: bounds what a cursor may name. */
const MAX_RANGES = 32

/** The segment of ids of one range. */
export const rangeSegment = (range: number): Segment => ({ after: rangeStart(range), upTo: rangeStart(range + 1) })

export const rangeOf = (id: number): number => Math.floor((id - 1) / RANGE_SIZE)

/** The watermark of a range nothing of which is behind it (its first id is one above). */
export const rangeStart = (range: number): number => range * RANGE_SIZE

/** The watermark of `id`'s range. */
const watermarkOf = (watermark: Watermark, id: number): number => watermark.get(rangeOf(id)) ?? rangeStart(rangeOf(id))

/** Whether `id` is at or behind the watermark of its range. */
export const covers = (watermark: Watermark, id: number): boolean => id <= watermarkOf(watermark, id)

/** Moves `id`'s range's watermark up to `id`. */
export function advance(watermark: Watermark, id: number): void {
  if (!covers(watermark, id)) watermark.set(rangeOf(id), id)
}

/**
 * A position as a resume cursor: the watermarks of the ranges it has passed
 * into, ascending, comma-separated. With one range it is the id of the last
 * event, as cursors always were.
 */
export function encodeCursor(watermark: Watermark): string {
  // One range (one PostgreSQL): every event of every stream asks, so the common case is direct.
  if (watermark.size === 1) {
    const [range, id] = watermark.entries().next().value as [number, number]
    return id > rangeStart(range) ? String(id) : ''
  }
  return [...watermark.entries()]
    .filter(([range, id]) => id > rangeStart(range))
    .map(([, id]) => id)
    .sort((a, b) => a - b)
    .join(',')
}

/**
 * The cursor of a position just advanced to `id` (see advance): with one
 * range, `id` itself, without a walk over the position. Every stream asks
 * it for every event it gives.
 */
export const cursorAfter = (watermark: Watermark, id: number): string =>
  watermark.size === 1 ? String(id) : encodeCursor(watermark)

/** The position a cursor names, or undefined when it is not one. */
export function parseCursor(cursor: string): Watermark | undefined {
  if (!/^\d{1,16}(?:,\d{1,16})*$/.test(cursor)) return undefined
  const ids = cursor.split(',').map(Number)
  if (ids.length > MAX_RANGES || ids.some((id) => !Number.isSafeInteger(id))) return undefined
  const watermark: Watermark = new Map()
  // 0 is the position before every event (nothing of any range).
  for (const id of ids.filter((id) => id > 0)) {
    // Each range once.
    if (watermark.has(rangeOf(id))) return undefined
    watermark.set(rangeOf(id), id)
  }
  return watermark
}

/** Segments of ids after `from` up to `upTo`, one per range where upTo is ahead. */
export function segmentsBetween(from: Watermark, upTo: Watermark): Segment[] {
  return [...upTo].flatMap(([range, to]) => {
    const after = from.get(range) ?? rangeStart(range)
    return to > after ? [{ after, upTo: to }] : []
  })
}

/**
 * Takes rows read above `watermark` (each range's rows in id order) in an
 * order that keeps each range's ids ascending, so that every event's
 * position is a resume point, and each conversation's events in sequence
 * order: an event waits while its conversation's previous one, in another
 * range, is `pending`. Ids within a range that are missing are passed only
 * when `skipMissing` allows (a hub waits for late commits; a replay reads
 * only what is visible to one caller). Advances `watermark` over what it
 * returns; leaves the rest, which a later read finds again.
 */
export function takeInOrder<T extends EventRef>(
  rows: T[],
  watermark: Watermark,
  rules: { skipMissing: (id: number) => boolean; pending: (prevId: number) => boolean },
): T[] {
  const queues = new Map<number, T[]>()
  for (const row of rows) {
    const range = rangeOf(row.event_id)
    const queue = queues.get(range)
    if (queue) queue.push(row)
    else queues.set(range, [row])
  }
  const taken: T[] = []
  // Each pass takes what it can from every range; a range held by another's
  // event goes on once that one is taken. Some range can always go on: ids of
  // a range and a conversation's seqs both follow the order ids were drawn in.
  for (let progress = true; progress;) {
    progress = false
    for (const queue of queues.values()) {
      let next = 0
      for (; next < queue.length; next++) {
        const row = queue[next] as T
        const missing = watermarkOf(watermark, row.event_id) + 1
        if (row.event_id !== missing && !rules.skipMissing(missing)) break
        if (row.prev_event_id != null && rules.pending(row.prev_event_id)) break
        taken.push(row)
        advance(watermark, row.event_id)
      }
      if (next > 0) {
        queue.splice(0, next)
        progress = true
      }
    }
  }
  return taken
}
