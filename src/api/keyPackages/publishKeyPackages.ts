import { sql } from 'kysely'
import { RecordFound, type ResponseSql } from '../../idempotency/statement.js'
import { NSID } from '../../lexicon/types/index.js'
import type * as PublishKeyPackages from '../../lexicon/types/blue.catbird.mls.publishKeyPackages.js'
import { devicesOf, deviceNotFound, namedDevice, sameBytes, type Device } from '../../services/devices.js'
import {
  duplicate,
  publishKeyPackage,
  publishKeyPackageBatch,
  tooManyKeyPackages,
  type BatchKeyPackage,
  type BatchOutcome,
} from '../../services/keyPackages.js'
import { invalidRequest, refusalLine, unprocessable } from '../../xrpc/errors.js'
import { idempotencyScope, requestFingerprint, requestIdempotencyKey } from '../../xrpc/idempotency-key.js'
import { handler } from '../../xrpc/types.js'
import { readEach, readKeyPackageInput, type CheckedKeyPackage } from '../input.js'

const MAX_BATCH = 100

/** What a last-resort item's record holds, as publishKeyPackage's does. */
const lastResortOutputSql: ResponseSql = {
  name: `${NSID.publishKeyPackages} last resort`,
  json: (row) => sql`json_build_object('available', ${row}.available)`,
}

const keyReused = () =>
  unprocessable('IdempotencyKeyReused', 'This idempotency key was already used with a different key package')

type Item = CheckedKeyPackage & Pick<BatchKeyPackage, 'key'>

/**
 * One item checked as publishKeyPackage checks a key package; with a
 * deviceId, that device must be the caller's and the package signed by its
 * MLS key; with an idempotencyKey, the key's record scope and the item's
 * fingerprint (without the key).
 */
async function readItem(
  item: PublishKeyPackages.KeyPackageItem,
  args: { caller: string; devices: Device[]; maxLifetimeDays: number },
): Promise<Item> {
  const kp = await readKeyPackageInput(item, { owner: args.caller, maxLifetimeDays: args.maxLifetimeDays })
  if (item.deviceId !== undefined) {
    const device = namedDevice(args.devices, args.caller, item.deviceId)
    if (!device) throw deviceNotFound()
    if (!sameBytes(device.mlsSignatureKey, kp.signatureKey)) {
      throw invalidRequest(
        'InvalidKeyPackage',
        `keyPackage: it is not signed by the MLS key of device ${device.deviceId}`,
      )
    }
  }
  const key = requestIdempotencyKey(item.idempotencyKey, undefined)
  if (key === undefined) return kp
  return {
    ...kp,
    key: { scope: idempotencyScope(args.caller, NSID.publishKeyPackages, key), fingerprint: requestFingerprint(item) },
  }
}

/** Why an item the store did not take was refused, as one line; nothing for one it took. */
function outcomeRefusal(outcome: BatchOutcome, maxPerUser: number): string | undefined {
  switch (outcome) {
    case 'stored':
    case 'replayed':
      return undefined
    case 'keyReused':
      return refusalLine(keyReused())
    case 'duplicate':
      return refusalLine(duplicate())
    case 'full':
      return refusalLine(tooManyKeyPackages(maxPerUser))
  }
}

export default handler(NSID.publishKeyPackages, async ({ input, caller, db, ctx }) => {
  const items = input.keyPackages
  if (items.length === 0) throw invalidRequest('InvalidBatch', `keyPackages is empty: send 1 to ${MAX_BATCH}`)
  if (items.length > MAX_BATCH) {
    throw invalidRequest(
      'BatchTooLarge',
      `keyPackages holds ${items.length} key packages; at most ${MAX_BATCH} per call`,
    )
  }
  const { config } = ctx
  const devices = items.some((item) => item.deviceId !== undefined) ? await devicesOf(db, caller) : []
  const read = await readEach(items, (item) =>
    readItem(item, { caller, devices, maxLifetimeDays: config.KEY_PACKAGE_MAX_LIFETIME_DAYS }),
  )
  const refusals = new Map<number, string>()
  read.forEach((item, index) => item.refused !== undefined && refusals.set(index, item.refused))
  const checked = read.flatMap((item, index) => (item.ok ? [{ index, item: item.ok }] : []))

  // The regular packages in one statement; a last-resort one replaces the previous one as publishKeyPackage does.
  const regular = checked.filter(({ item }) => !item.lastResort)
  const outcomes = regular.length
    ? await publishKeyPackageBatch(db, {
        owner: caller,
        maxPerUser: config.MAX_KEY_PACKAGES_PER_USER,
        items: regular.map(({ item }) => item),
        nsid: NSID.publishKeyPackages,
        ttlSeconds: config.IDEMPOTENCY_TTL_SECONDS,
      })
    : []
  regular.forEach(({ index }, i) => {
    const refused = outcomeRefusal(outcomes[i] as BatchOutcome, config.MAX_KEY_PACKAGES_PER_USER)
    if (refused) refusals.set(index, refused)
  })
  for (const { index, item } of checked.filter(({ item }) => item.lastResort)) {
    const record = item.key && {
      keyed: {
        shardKey: caller,
        scope: item.key.scope,
        callerDid: caller,
        nsid: NSID.publishKeyPackages,
        fingerprint: item.key.fingerprint,
        ttlSeconds: config.IDEMPOTENCY_TTL_SECONDS,
      },
      response: lastResortOutputSql,
    }
    await publishKeyPackage(db, { ...item, owner: caller, maxPerUser: config.MAX_KEY_PACKAGES_PER_USER }, record).catch(
      (err: unknown) => {
        if (err instanceof RecordFound) {
          if (!err.stored.fingerprint.equals(item.key?.fingerprint ?? Buffer.alloc(0))) {
            refusals.set(index, refusalLine(keyReused()) as string)
          }
          return
        }
        const refused = refusalLine(err)
        if (refused === undefined) throw err
        refusals.set(index, refused)
      },
    )
  }
  const errors = [...refusals].sort(([a], [b]) => a - b).map(([index, error]) => ({ index, error }))
  return {
    succeeded: items.length - errors.length,
    failed: errors.length,
    ...(errors.length ? { errors } : {}),
  }
})
