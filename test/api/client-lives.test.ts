import { randomUUID } from 'node:crypto'
import { createGroup, type ClientState } from 'ts-mls'
import { describe, expect, it } from 'vitest'
import {
  addProposal,
  assertInputOf,
  assertOutputOf,
  base64Bytes,
  bytesJson,
  commit,
  encodeBase64,
  encrypt,
  epochOf,
  hex,
  joinFromWelcome,
  keyPackage,
  keyPackageItem,
  keyPackageRef,
  lifetimeFromNow,
  newKeyPackage,
  NSID,
  pad,
  receive,
  suiteImpl,
  SUITE,
  TestDevice,
  TestUser,
  type XrpcResponse,
} from '../helpers/index.js'
import { testAppForFile } from '../helpers/per-file.js'

// Whole lives of the clients, as each generation of Catbird's client lives them against this one
// server: every input built as that client builds it, every output held to that client's lexicons,
// real MLS throughout (each device keeps its own state and opens only what was made for it).
const t = testAppForFile()

const DAY_SECONDS = 24n * 3600n
/** Key packages valid for 90 days, as the iOS client makes them. */
const lifetime = () => lifetimeFromNow(-60n, 90n * DAY_SECONDS - 60n)

/** The answer of a step the life depends on. */
function ok<T>(res: XrpcResponse<T>): T {
  expect(res.status, JSON.stringify(res.body)).toBe(200)
  return res.body
}

const text = (s: string) => new TextEncoder().encode(JSON.stringify({ text: s }))
const read = (bytes: Uint8Array | undefined) => (JSON.parse(new TextDecoder().decode(bytes)) as { text: string }).text

/**
 * As the client-era client reads a ciphertext (stripPaddingIfPresent in
 * MLSMessagePadding.swift): a plausible length prefix followed by an
 * MLSMessage's version is padding; anything else is used as it is.
 */
function stripPaddingIfPresent(bytes: Uint8Array): Uint8Array {
  if (bytes.length < 5) return bytes
  const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0)
  return length > 0 && length <= bytes.length - 4 && (bytes[4] ?? 9) <= 4 ? bytes.subarray(4, 4 + length) : bytes
}

const ciphertextOf = (m: { ciphertext: unknown }) => base64Bytes((m.ciphertext as { $bytes: string }).$bytes)

/**
 * One installation of a client: its user, its MLS state in each group (by
 * group id), the ids of the messages it sent (it cannot decrypt its own:
 * it keeps their plaintext, as the iOS client caches it under msgId), and
 * the last seq it read (its paging cursor).
 */
class Installation {
  readonly states = new Map<string, ClientState>()
  readonly sent = new Set<string>()
  readonly lastSeq = new Map<string, number>()
  /** The id of the last message it read (the seed-era paging cursor). */
  readonly lastId = new Map<string, string>()
  /** The server's id of its device, once registered (client-era). */
  deviceId = ''

  constructor(
    readonly user: TestUser,
    /** A client-era app's registered device; a seed-era app has none, and does not know of padding. */
    readonly device?: TestDevice,
  ) {}

  /** What it hands MLS: the client-era app strips padding; the seed-era app takes the bytes as they are. */
  private mlsOf(ciphertext: Uint8Array): Uint8Array {
    return this.device ? stripPaddingIfPresent(ciphertext) : ciphertext
  }

  state(groupId: string): ClientState {
    const state = this.states.get(groupId)
    if (!state) throw new Error(`${this.user.did} is not in ${groupId}`)
    return state
  }

  /** A new application message of its, as an MLSMessage (it moves its sending ratchet). */
  async encrypt(groupId: string, plaintext: string): Promise<Uint8Array> {
    const made = await encrypt(this.state(groupId), text(plaintext))
    this.states.set(groupId, made.state)
    return made.data
  }

  /** The sender of each message it decrypted, as the server named it. */
  readonly senders: string[] = []
  /** Messages it skipped as from an epoch before its own (it joined later): their seqs. */
  readonly oldEpoch: number[] = []

  /**
   * Processes what it fetched, in order: commits move its epoch, messages of
   * others are decrypted; those of an epoch before its own are skipped, as
   * the iOS client skips them (MLSClient.swift, ignoredOldEpochMessage).
   */
  async process(
    groupId: string,
    messages: Array<{ id: string; seq: number; epoch: number; ciphertext: unknown; sender?: string }>,
  ) {
    const texts: string[] = []
    for (const m of messages) {
      this.lastSeq.set(groupId, m.seq)
      this.lastId.set(groupId, m.id)
      if (this.sent.has(m.id)) continue
      if (BigInt(m.epoch) < this.state(groupId).groupContext.epoch) {
        this.oldEpoch.push(m.seq)
        continue
      }
      const got = await receive(this.state(groupId), this.mlsOf(ciphertextOf(m)))
      this.states.set(groupId, got.state)
      if (got.text) {
        texts.push(read(got.text))
        this.senders.push(m.sender ?? '')
      }
    }
    return texts
  }
}

/** A new MLS group of `creator` (its leaf signed by its device's key, if it has one) adding `keyPackages`. */
async function newGroupAdding(creator: Installation, keyPackages: Uint8Array[]) {
  const groupId = crypto.getRandomValues(new Uint8Array(16))
  const own = await newKeyPackage(creator.user.did, {
    lifetime: lifetime(),
    ...(creator.device ? { signatureKeys: creator.device.keys } : {}),
  })
  const cs = await suiteImpl(SUITE)
  const state = await createGroup(groupId, own.publicPackage, own.privatePackage, [], cs)
  const adding = await commit(state, keyPackages.map(addProposal))
  creator.states.set(hex(groupId), adding.state)
  return { groupId: hex(groupId), welcome: adding.welcome as Uint8Array }
}

/** createConvo's input as both clients build it: no commit, the creator's group and its Welcome. */
const createConvoInput = (group: { groupId: string; welcome: Uint8Array }, dids: string[], name: string) => ({
  groupId: group.groupId,
  idempotencyKey: randomUUID(),
  cipherSuite: SUITE,
  initialMembers: dids,
  welcomeMessage: encodeBase64(group.welcome),
  metadata: { name },
})

// ---------------------------------------------------------------- the client-era client

/** registerDevice's input as the iOS client sends it: its key packages valid and `expires` 90 days on. */
const clientEraItem = (data: Uint8Array) => ({
  ...keyPackageItem(data),
  expires: new Date(Date.now() + 90 * 86_400_000).toISOString(),
})

/** A client-era app on a new device of `user`, registered with `count` key packages (then opted in, as it does). */
async function clientEraApp(user: TestUser, count = 5): Promise<Installation> {
  const device = await TestDevice.of(user)
  const app = new Installation(user, device)
  const registered = await register(app, await device.keyPackages(count, { lifetime: lifetime() }))
  ok(await t.call(user, NSID.optIn, { input: { deviceId: registered.deviceId } }))
  return app
}

async function register(app: Installation, packages: Uint8Array[]) {
  const device = app.device as TestDevice
  const input = { ...device.registration(packages), keyPackages: packages.map(clientEraItem) }
  assertInputOf('clientEra', NSID.registerDevice, input)
  const registered = ok(await t.call(app.user, NSID.registerDevice, { input }))
  assertOutputOf('clientEra', NSID.registerDevice, registered)
  app.deviceId = registered.deviceId
  return registered
}

/** sendMessage as MLSConversationManager+Messaging.swift sends it: group id, msgId (an uppercase UUID), padded, no senderDid. */
async function clientEraSend(app: Installation, groupId: string, plaintext: string) {
  const mls = await app.encrypt(groupId, plaintext)
  const padded = pad(mls)
  const input = {
    convoId: groupId,
    msgId: randomUUID().toUpperCase(),
    idempotencyKey: randomUUID(),
    ciphertext: bytesJson(padded),
    epoch: epochOf(mls),
    paddedSize: padded.length,
  }
  // Its msgId is 36 characters, beyond its own lexicon's 26 (a ULID): the rest of the input is as its lexicon says.
  assertInputOf('clientEra', NSID.sendMessage, { ...input, msgId: '01HZZZZZZZZZZZZZZZZZZZZZZZ' })
  const res = await t.call(app.user, NSID.sendMessage, { input })
  const sent = ok(res)
  assertOutputOf('clientEra', NSID.sendMessage, sent)
  app.sent.add(sent.messageId)
  return { input, sent }
}

/** Its catch-up: pages of getMessages by sinceSeq from the last seq it read, until a short page. */
async function clientEraCatchUp(app: Installation, groupId: string, limit = 100) {
  const texts: string[] = []
  for (let page = 0; page < 10; page++) {
    const since = app.lastSeq.get(groupId)
    const params = { convoId: groupId, limit, ...(since !== undefined ? { sinceSeq: since } : {}) }
    const got = ok(await t.call(app.user, NSID.getMessages, { params }))
    assertOutputOf('clientEra', NSID.getMessages, got)
    expect(got.gapInfo?.hasGaps).toBe(false)
    texts.push(...(await app.process(groupId, got.messages)))
    if (got.messages.length < limit) break
  }
  return texts
}

/**
 * getWelcome by group id, as the client asks for it (naming its device only
 * if `named`, which this server's lexicon allows), joined from with this
 * device's own key package.
 */
async function clientEraJoin(app: Installation, groupId: string, named = false) {
  const params = { convoId: groupId, ...(named ? { deviceId: app.deviceId } : {}) }
  const got = ok(await t.call(app.user, NSID.getWelcome, { params }))
  assertOutputOf('seedEra', NSID.getWelcome, got)
  expect(got.convoId).toBe(groupId)
  const state = await (app.device as TestDevice).join(base64Bytes(got.welcome))
  app.states.set(groupId, state)
  return state
}

/** The conversations the client shows: getConvos decoded, those whose members name the user by its bare DID. */
async function clientEraConvos(app: Installation) {
  const got = ok(await t.call(app.user, NSID.getConvos, { params: { limit: 50 } }))
  assertOutputOf('clientEra', NSID.getConvos, got)
  return got.conversations.filter((c) => c.members.some((m) => m.did.toLowerCase() === app.user.did.toLowerCase()))
}

/**
 * createConvo as the client sends it: its group adding the packages it
 * claimed, with their KeyPackageRefs (keyPackageHashes), no commit.
 */
async function clientEraCreate(
  app: Installation,
  claimed: Array<{ did: string; keyPackage: string; keyPackageHash?: string }>,
  dids: string[],
  name: string,
) {
  const group = await newGroupAdding(
    app,
    claimed.map((kp) => base64Bytes(kp.keyPackage)),
  )
  const input = {
    ...createConvoInput(group, dids, name),
    keyPackageHashes: claimed.map((kp) => ({ did: kp.did, hash: kp.keyPackageHash! })),
  }
  assertInputOf('clientEra', NSID.createConvo, input)
  const created = ok(await t.call(app.user, NSID.createConvo, { input }))
  assertOutputOf('clientEra', NSID.createConvo, created)
  expect(created.groupId).toBe(group.groupId)
  return created
}

/** getExpectedConversations as the client calls it (its mlsDid as deviceId): whether its device is in each group, by group id. */
async function inGroup(app: Installation) {
  const params = { deviceId: `${app.user.did}#${app.deviceId}` }
  const got = ok(await t.call(app.user, NSID.getExpectedConversations, { params }))
  assertOutputOf('clientEra', NSID.getExpectedConversations, got)
  return Object.fromEntries(got.conversations.map((c) => [c.convoId, c.deviceInGroup]))
}

describe('the client-era client’s life', () => {
  it('two devices, a friend adds both, messages and retries, paging, its conversation list, a third device added by a member, a device deleted', async () => {
    const user = await TestUser.create()
    const friend = await clientEraApp(await TestUser.create())

    // The phone registers with its batch of key packages.
    const phone = await clientEraApp(user)
    // The laptop's first registration carries one bad package (another DID's): refused whole, by its index, nothing stored.
    const laptopDevice = await TestDevice.of(user)
    const laptop = new Installation(user, laptopDevice)
    const good = await laptopDevice.keyPackages(3, { lifetime: lifetime() })
    const foreign = await keyPackage(await TestUser.create(), {
      signatureKeys: laptopDevice.keys,
      lifetime: lifetime(),
    })
    const refused = await t.call(user, NSID.registerDevice, {
      input: { ...laptopDevice.registration([]), keyPackages: [...good, foreign].map(clientEraItem) },
    })
    expect([refused.status, refused.body.error]).toEqual([400, 'InvalidKeyPackages'])
    expect(refused.body.message).toMatch(/keyPackages\[3\]/)
    expect(ok(await t.call(user, NSID.listDevices)).devices.map((d) => d.deviceId)).toEqual([phone.deviceId])
    // Its registration again, the bad package left out.
    await register(laptop, good)
    ok(await t.call(user, NSID.optIn, { input: { deviceId: laptop.deviceId } }))

    // The phone replenishes with publishKeyPackages; one item is tampered with: reported by its index, the rest stored.
    const batch = await phone.device!.keyPackages(3, { lifetime: lifetime() })
    const tampered = Uint8Array.from(batch[1]!)
    tampered[tampered.length - 1]! ^= 1
    const items = [batch[0]!, tampered, batch[2]!].map((data) => ({
      ...clientEraItem(data),
      idempotencyKey: randomUUID(),
      deviceId: phone.deviceId,
      credentialDid: user.did,
    }))
    assertInputOf('clientEra', NSID.publishKeyPackages, { keyPackages: items })
    const published = ok(await t.call(user, NSID.publishKeyPackages, { input: { keyPackages: items } }))
    assertOutputOf('clientEra', NSID.publishKeyPackages, published)
    expect(published).toMatchObject({ succeeded: 2, failed: 1, errors: [{ index: 1, error: expect.any(String) }] })
    const stats = ok(await t.call(user, NSID.getKeyPackageStats))
    assertOutputOf('clientEra', NSID.getKeyPackageStats, stats)
    expect(stats.available).toBe(5 + 3 + 2)

    // The friend adds the user: one key package per device, each with its KeyPackageRef, checked as the client checks it.
    const claimed = ok(await t.call(friend.user, NSID.getKeyPackages, { params: { dids: [user.did] } }))
    assertOutputOf('clientEra', NSID.getKeyPackages, claimed)
    expect(claimed.keyPackages).toHaveLength(2)
    const packages = claimed.keyPackages.map((kp) => base64Bytes(kp.keyPackage))
    for (const [i, kp] of claimed.keyPackages.entries()) {
      expect(kp.keyPackageHash).toBe(hex(await keyPackageRef(packages[i]!)))
    }
    const owners = claimed.keyPackages.map((kp) =>
      phone.device!.refs.has(kp.keyPackageHash!) ? 'phone' : laptopDevice.refs.has(kp.keyPackageHash!) ? 'laptop' : '?',
    )
    expect(owners.sort()).toEqual(['laptop', 'phone'])
    const created = await clientEraCreate(friend, claimed.keyPackages, [user.did], 'Weekend')
    const { groupId } = created
    expect(created).toMatchObject({ groupId, epoch: 1 })

    // Each device finds the conversation by its group id and takes its own Welcome.
    for (const app of [phone, laptop]) {
      const [shown] = await clientEraConvos(app)
      expect(shown?.groupId).toBe(groupId)
      expect(shown?.members.map((m) => [m.did, m.userDid, m.isAdmin]).sort()).toEqual(
        [
          [friend.user.did, friend.user.did, true],
          [user.did, user.did, false],
        ].sort(),
      )
    }
    // The phone names itself and confirms its own Welcome (the server's lexicon lets it)...
    expect((await clientEraJoin(phone, groupId, true)).groupContext.epoch).toBe(1n)
    const confirmed = ok(
      await t.call(user, NSID.confirmWelcome, { input: { convoId: groupId, success: true, deviceId: phone.deviceId } }),
    )
    expect(confirmed).toEqual({ confirmed: true })
    // ...which leaves the laptop's: it asks as the iOS client does (no device named, never confirmed).
    expect((await clientEraJoin(laptop, groupId)).groupContext.epoch).toBe(1n)
    // Until it is settled, it can fetch it again (its grace).
    expect((await t.call(user, NSID.getWelcome, { params: { convoId: groupId } })).status).toBe(200)

    // Messages, padded and named: each member reads the others'.
    const hello = await clientEraSend(phone, groupId, 'hello from the phone')
    expect(hello.sent).toMatchObject({ messageId: hello.input.msgId, seq: 1, epoch: 1 })
    // A retry of the same msgId (a new idempotency key, as the client makes one per call): the first answer.
    const retried = ok(
      await t.call(user, NSID.sendMessage, { input: { ...hello.input, idempotencyKey: randomUUID() } }),
    )
    expect(retried).toEqual(hello.sent)
    await clientEraSend(friend, groupId, 'hi both')
    expect(await clientEraCatchUp(laptop, groupId)).toEqual(['hello from the phone', 'hi both'])
    // The laptop's first message settles its Welcome, the user's last one waiting: nothing is left to fetch.
    await clientEraSend(laptop, groupId, 'and the laptop')
    expect((await t.call(user, NSID.getWelcome, { params: { convoId: groupId } })).status).toBe(410)
    expect(await clientEraCatchUp(friend, groupId)).toEqual(['hello from the phone', 'and the laptop'])
    expect(await clientEraCatchUp(phone, groupId)).toEqual(['hi both', 'and the laptop'])

    // More than a page: the laptop pages by sinceSeq, two at a time, and reads them all in order.
    for (const n of [1, 2, 3]) await clientEraSend(friend, groupId, `news ${n}`)
    expect(await clientEraCatchUp(laptop, groupId, 2)).toEqual(['news 1', 'news 2', 'news 3'])
    expect(laptop.lastSeq.get(groupId)).toBe(6)

    // A third device, registered later: it waits to be added, and a member adds it.
    const tablet = await clientEraApp(user)
    const waiting = ok(await t.call(friend.user, NSID.getPendingDeviceAdditions, { params: { limit: 50 } }))
    assertOutputOf('clientEra', NSID.getPendingDeviceAdditions, waiting)
    expect(waiting.pendingAdditions).toEqual([
      {
        id: expect.any(String),
        convoId: groupId,
        userDid: user.did,
        deviceId: tablet.deviceId,
        deviceName: 'iPhone',
        deviceCredentialDid: `${user.did}#${tablet.deviceId}`,
        status: 'pending',
        createdAt: expect.any(String),
      },
    ])
    const addition = waiting.pendingAdditions[0]!
    const claim = ok(
      await t.call(friend.user, NSID.claimPendingDeviceAddition, { input: { pendingAdditionId: addition.id } }),
    )
    assertOutputOf('clientEra', NSID.claimPendingDeviceAddition, claim)
    expect(claim).toMatchObject({ claimed: true, convoId: groupId, claimedBy: friend.user.did })
    expect(tablet.device!.refs.has(claim.keyPackage!.keyPackageHash!)).toBe(true)
    // Another member sees it in progress, claimed by the friend.
    const seenByPhone = ok(await t.call(user, NSID.getPendingDeviceAdditions, { params: { convoIds: [groupId] } }))
    expect(seenByPhone.pendingAdditions.map((a) => [a.status, a.claimedBy])).toEqual([['in_progress', friend.user.did]])
    // The commit adding it, sent as the client sends device additions: addMembers with an empty didList.
    const adding = await commit(friend.state(groupId), [addProposal(base64Bytes(claim.keyPackage!.keyPackage))])
    const addInput = {
      convoId: groupId,
      didList: [],
      commit: encodeBase64(adding.data),
      welcomeMessage: encodeBase64(adding.welcome!),
      idempotencyKey: randomUUID(),
    }
    // Its lexicon says didList has at least one DID; the client sends none here (MLSConversationManager.swift).
    assertInputOf('clientEra', NSID.addMembers, { ...addInput, didList: [user.did] })
    const added = ok(await t.call(friend.user, NSID.addMembers, { input: addInput }))
    assertOutputOf('clientEra', NSID.addMembers, added)
    expect(added).toEqual({ success: true, newEpoch: 2 })
    friend.states.set(groupId, adding.state)
    const completed = ok(
      await t.call(friend.user, NSID.completePendingDeviceAddition, {
        input: { pendingAdditionId: addition.id, newEpoch: added.newEpoch },
      }),
    )
    assertOutputOf('clientEra', NSID.completePendingDeviceAddition, completed)
    expect(ok(await t.call(friend.user, NSID.getPendingDeviceAdditions)).pendingAdditions).toEqual([])
    // The tablet joins from its Welcome; the others read the commit and are at the new epoch with it.
    expect((await clientEraJoin(tablet, groupId)).groupContext.epoch).toBe(2n)
    // Its first catch-up: its user's history, from before it had keys (the server cannot tell
    // which device of a user asks), skipped as from old epochs, the commit that added it too.
    expect(await clientEraCatchUp(tablet, groupId)).toEqual([])
    expect(tablet.oldEpoch).toEqual([1, 2, 3, 4, 5, 6, 7])
    expect(await clientEraCatchUp(phone, groupId)).toEqual(['news 1', 'news 2', 'news 3'])
    for (const app of [phone, laptop]) {
      expect(await clientEraCatchUp(app, groupId)).toEqual([])
      expect(app.state(groupId).groupContext.epoch).toBe(2n)
    }
    // Each device is in the group as far as the server knows (as the client asks: by its mlsDid).
    for (const app of [phone, laptop, tablet]) expect(await inGroup(app)).toEqual({ [groupId]: true })
    await clientEraSend(tablet, groupId, 'the tablet is here')
    for (const app of [phone, laptop, friend])
      expect(await clientEraCatchUp(app, groupId)).toEqual(['the tablet is here'])

    // Its devices, and one deleted: its key packages with it; the others stay.
    const devices = ok(await t.call(user, NSID.listDevices))
    assertOutputOf('clientEra', NSID.listDevices, devices)
    expect(devices.devices.map((d) => d.deviceId).sort()).toEqual(
      [phone.deviceId, laptop.deviceId, tablet.deviceId].sort(),
    )
    const deleted = ok(await t.call(user, NSID.deleteDevice, { input: { deviceId: laptop.deviceId } }))
    assertOutputOf('clientEra', NSID.deleteDevice, deleted)
    expect(deleted).toEqual({ deleted: true, keyPackagesDeleted: 2 })
    expect(
      ok(await t.call(user, NSID.listDevices))
        .devices.map((d) => d.deviceId)
        .sort(),
    ).toEqual([phone.deviceId, tablet.deviceId].sort())
    // The conversation goes on for the others.
    await clientEraSend(phone, groupId, 'still here')
    expect(await clientEraCatchUp(tablet, groupId)).toEqual(['still here'])
  })
})

// ---------------------------------------------------------------- the seed-era client

/** publishKeyPackage as the seed-era client sends it. */
async function seedEraPublish(app: Installation) {
  const input = {
    keyPackage: encodeBase64(await keyPackage(app.user, { lifetime: lifetime() })),
    cipherSuite: SUITE,
    expires: new Date(Date.now() + 90 * 86_400_000).toISOString(),
    idempotencyKey: randomUUID(),
  }
  assertInputOf('seedEra', NSID.publishKeyPackage, input)
  assertOutputOf('seedEra', NSID.publishKeyPackage, ok(await t.call(app.user, NSID.publishKeyPackage, { input })))
}

/** getKeyPackages for the DIDs to add, as the seed-era client reads the answer: one package per DID. */
async function seedEraClaim(app: Installation, dids: string[]) {
  const got = ok(await t.call(app.user, NSID.getKeyPackages, { params: { dids } }))
  assertOutputOf('seedEra', NSID.getKeyPackages, got)
  return dids.map((did) => base64Bytes(got.keyPackages.find((kp) => kp.did === did)!.keyPackage))
}

/** createConvo as the seed-era client sends it (no keyPackageHashes): the conversation, by its id. */
async function seedEraCreate(app: Installation, dids: string[], name: string) {
  const group = await newGroupAdding(app, await seedEraClaim(app, dids))
  const input = createConvoInput(group, dids, name)
  assertInputOf('seedEra', NSID.createConvo, input)
  const created = ok(await t.call(app.user, NSID.createConvo, { input }))
  assertOutputOf('seedEra', NSID.createConvo, created)
  expect(created.id).not.toBe(group.groupId)
  return created
}

/** getWelcome and confirmWelcome by the conversation's id, as the seed-era client calls them. */
async function seedEraJoin(app: Installation, convo: { id: string; groupId: string }) {
  const got = ok(await t.call(app.user, NSID.getWelcome, { params: { convoId: convo.id } }))
  assertOutputOf('seedEra', NSID.getWelcome, got)
  app.states.set(convo.groupId, await joinFromWelcome(app.user, base64Bytes(got.welcome)))
  const input = { convoId: convo.id, success: true }
  assertInputOf('seedEra', NSID.confirmWelcome, input)
  const confirmed = ok(await t.call(app.user, NSID.confirmWelcome, { input }))
  assertOutputOf('seedEra', NSID.confirmWelcome, confirmed)
  expect(confirmed).toEqual({ confirmed: true })
}

/** sendMessage as the seed-era client sends it: the conversation's id, senderDid, its idempotency key, no padding. */
async function seedEraSend(app: Installation, convo: { id: string; groupId: string }, plaintext: string) {
  const mls = await app.encrypt(convo.groupId, plaintext)
  const input = {
    convoId: convo.id,
    senderDid: app.user.did,
    idempotencyKey: randomUUID(),
    ciphertext: bytesJson(mls),
    epoch: epochOf(mls),
  }
  assertInputOf('seedEra', NSID.sendMessage, input)
  const sent = ok(await t.call(app.user, NSID.sendMessage, { input }))
  assertOutputOf('seedEra', NSID.sendMessage, sent)
  app.sent.add(sent.messageId)
  return { input, sent }
}

/** Its catch-up: getMessages after the last message it read (sinceMessage), until a short page. */
async function seedEraCatchUp(app: Installation, convo: { id: string; groupId: string }, limit = 50) {
  const texts: string[] = []
  const read = app.senders.length
  for (let page = 0; page < 10; page++) {
    const since = app.lastId.get(convo.groupId)
    const params = { convoId: convo.id, limit, ...(since !== undefined ? { sinceMessage: since } : {}) }
    const got = ok(await t.call(app.user, NSID.getMessages, { params }))
    assertOutputOf('seedEra', NSID.getMessages, got)
    texts.push(...(await app.process(convo.groupId, got.messages)))
    if (got.messages.length < limit) break
  }
  return { texts, senders: app.senders.slice(read) }
}

/** The conversations the seed-era client shows: getConvos as its lexicons decode it. */
async function seedEraConvos(app: Installation) {
  const got = ok(await t.call(app.user, NSID.getConvos))
  assertOutputOf('seedEra', NSID.getConvos, got)
  return got.conversations
}

describe('the seed-era client’s life', () => {
  it('publishes, creates and is added, joins by Welcome, sends with senderDid and retries by idempotency key, pages by sinceMessage, adds a third member, leaves', async () => {
    const seedEraApp = async () => new Installation(await TestUser.create())
    const [alice, bob, carol] = [await seedEraApp(), await seedEraApp(), await seedEraApp()]
    for (const app of [bob, carol]) await seedEraPublish(app)

    const convo = await seedEraCreate(alice, [bob.user.did], 'Seed')
    const [shown] = await seedEraConvos(bob)
    expect(shown).toMatchObject({ id: convo.id, groupId: convo.groupId, creator: alice.user.did })
    expect(shown?.members.map((m) => m.did).sort()).toEqual([alice.user.did, bob.user.did].sort())
    await seedEraJoin(bob, convo)

    const hello = await seedEraSend(alice, convo, 'hello bob')
    expect(hello.sent.seq).toBe(1)
    // A retry of the same request (its idempotency key): the first answer, nothing more stored.
    expect(ok(await t.call(alice.user, NSID.sendMessage, { input: hello.input }))).toEqual(hello.sent)
    expect(await seedEraCatchUp(bob, convo)).toEqual({ texts: ['hello bob'], senders: [alice.user.did] })
    await seedEraSend(bob, convo, 'hello alice')
    for (const n of [1, 2, 3]) await seedEraSend(bob, convo, `more ${n}`)
    expect((await seedEraCatchUp(alice, convo, 2)).texts).toEqual(['hello alice', 'more 1', 'more 2', 'more 3'])

    // Alice adds Carol: a commit and its Welcome by addMembers, as the seed-era client sends them.
    const [carolsPackage] = await seedEraClaim(alice, [carol.user.did])
    const adding = await commit(alice.state(convo.groupId), [addProposal(carolsPackage!)])
    const addInput = {
      convoId: convo.id,
      idempotencyKey: randomUUID(),
      didList: [carol.user.did],
      commit: encodeBase64(adding.data),
      welcomeMessage: encodeBase64(adding.welcome!),
    }
    assertInputOf('seedEra', NSID.addMembers, addInput)
    const added = ok(await t.call(alice.user, NSID.addMembers, { input: addInput }))
    assertOutputOf('seedEra', NSID.addMembers, added)
    alice.states.set(convo.groupId, adding.state)
    await seedEraJoin(carol, convo)
    // Bob reads the commit and is at the new epoch; Carol sees nothing from before she joined.
    expect((await seedEraCatchUp(bob, convo)).texts).toEqual([])
    expect(bob.state(convo.groupId).groupContext.epoch).toBe(2n)
    await seedEraSend(carol, convo, 'hi, I am new')
    for (const app of [alice, bob]) {
      expect(await seedEraCatchUp(app, convo)).toEqual({ texts: ['hi, I am new'], senders: [carol.user.did] })
    }
    expect(await seedEraCatchUp(carol, convo)).toEqual({ texts: [], senders: [] })

    // Bob leaves, as the seed-era client leaves: by the conversation's id alone.
    const leaveInput = { convoId: convo.id }
    assertInputOf('seedEra', NSID.leaveConvo, leaveInput)
    assertOutputOf('seedEra', NSID.leaveConvo, ok(await t.call(bob.user, NSID.leaveConvo, { input: leaveInput })))
    expect(await seedEraConvos(bob)).toEqual([])
    const [left] = await seedEraConvos(alice)
    expect(left?.members.map((m) => m.did).sort()).toEqual([alice.user.did, carol.user.did].sort())
  })
})

// ---------------------------------------------------------------- both at once

describe('a seed-era client and a client-era client in one conversation', () => {
  it('each creates, joins and reads the other’s messages, the conversation named its own way', async () => {
    const seed = new Installation(await TestUser.create())
    const phone = await clientEraApp(await TestUser.create())
    await seedEraPublish(seed)

    // The seed-era client creates it with the client-era user's device in it.
    const convo = await seedEraCreate(seed, [phone.user.did], 'Both')
    const [shown] = await clientEraConvos(phone)
    expect(shown?.groupId).toBe(convo.groupId)
    await clientEraJoin(phone, convo.groupId)
    expect(await inGroup(phone)).toEqual({ [convo.groupId]: true })

    const padded = await clientEraSend(phone, convo.groupId, 'padded, from the phone')
    await seedEraSend(seed, convo, 'plain, from the seed-era app')
    // Each reads the other's: the seed-era app by the conversation's id, the phone by its group id.
    expect(await seedEraCatchUp(seed, convo)).toEqual({
      texts: ['padded, from the phone'],
      senders: [phone.user.did],
    })
    expect(await clientEraCatchUp(phone, convo.groupId)).toEqual(['plain, from the seed-era app'])
    // The phone's retry is answered as the first time.
    expect(
      ok(await t.call(phone.user, NSID.sendMessage, { input: { ...padded.input, idempotencyKey: randomUUID() } })),
    ).toEqual(padded.sent)

    // The client-era client creates one and adds the seed-era user, whose one package has no device.
    const claimed = ok(await t.call(phone.user, NSID.getKeyPackages, { params: { dids: [seed.user.did] } }))
    assertOutputOf('clientEra', NSID.getKeyPackages, claimed)
    const created = await clientEraCreate(phone, claimed.keyPackages, [seed.user.did], 'Back')
    const back = { id: created.id, groupId: created.groupId }
    await seedEraJoin(seed, back)
    await seedEraSend(seed, back, 'joined yours')
    expect(await clientEraCatchUp(phone, back.groupId)).toEqual(['joined yours'])
    await clientEraSend(phone, back.groupId, 'welcome')
    expect((await seedEraCatchUp(seed, back)).texts).toEqual(['welcome'])
  })
})
