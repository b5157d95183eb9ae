import { describe, expect, it } from 'vitest'
import { highestEventId, readEvents, type Segment } from '../../src/services/eventLog.js'
import { TestUser } from '../helpers/index.js'
import { testAppForFile } from '../helpers/per-file.js'

const t = testAppForFile()

describe("the event hub's read of a batch", () => {
  it('reads the same events and members in one statement (one PostgreSQL) as apart (Citus)', async () => {
    const [alice, bob, carol] = await Promise.all([TestUser.create(), TestUser.create(), TestUser.create()])
    const db = t.database.db
    const segment: Segment = { after: (await highestEventId(db, Number.MAX_SAFE_INTEGER)) ?? 0, upTo: 2 ** 53 - 1 }
    const first = await t.seed.createConvo(alice, [bob])
    const second = await t.seed.createConvo(bob, [carol])
    await t.seed.sendMessage(alice, first.id)
    await t.seed.addMembers(alice, first.id, [carol])
    await t.seed.sendMessage(bob, second.id)
    await t.seed.removeMember(alice, first.id, carol)

    const whole = await readEvents(db, segment, { limit: 500, withPrev: false, read: 'together' })
    // Each creation's members joining, the messages (two commits among them), the later membership
    // events: in id order on one PostgreSQL; on Citus each worker draws ids from a range of its own.
    const kinds = whole.page.rows.map((e) => ('kind' in e ? e.kind : 'message'))
    expect([...kinds].sort()).toEqual([...Array<string>(6).fill('membership'), ...Array<string>(4).fill('message')])
    // The members now: carol left the first conversation.
    const membersOf = (members: Map<string, number> | undefined) => [...(members?.keys() ?? [])].sort()
    expect(membersOf(whole.members.get(first.id))).toEqual([alice.did, bob.did].sort())
    expect(membersOf(whole.members.get(second.id))).toEqual([bob.did, carol.did].sort())

    // Every way of reading agrees, a page cut short by the limit included.
    for (const withPrev of [false, true]) {
      for (const limit of [2, 500]) {
        const together = await readEvents(db, segment, { limit, withPrev, read: 'together' })
        const apart = await readEvents(db, segment, { limit, withPrev, read: 'apart' })
        expect(together.page).toEqual(apart.page)
        for (const { convo_id } of apart.page.rows) {
          expect(together.members.get(convo_id)).toEqual(apart.members.get(convo_id))
        }
      }
    }
  })
})
