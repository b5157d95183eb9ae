import { randomBytes, randomUUID } from 'node:crypto'
import type { SignatureKeys } from '../../scripts/mls-client.js'
import type { Db } from '../../src/db/schema.js'
import type { NSID } from '../../src/lexicon/types/index.js'
import { encodeBase64 } from '../../src/lexicon/wire.js'
import type { ClientState } from 'ts-mls'
import {
  bytesJson,
  deviceKeys,
  hex,
  joinFromWelcome,
  keyPackage,
  keyPackageRef,
  SUITE,
  type KeyPackageOptions,
} from './mls.js'
import type { TestUser } from './users.js'
import type { InputOf } from './xrpc.js'

type Registration = InputOf<typeof NSID.registerDevice>

const DAY_MS = 24 * 3600 * 1000

/**
 * A device of a user as the iOS client has one: its own persistent UUID
 * (uppercase, as `identifierForVendor` reads), a registration key of its own
 * (`signaturePublicKey`, 32 raw Ed25519 bytes, not its MLS key), and one MLS
 * signature key pair that signs all its key packages.
 */
export class TestDevice {
  /** The KeyPackageRefs (hex) of the key packages it made: the Welcomes it can open. */
  readonly refs = new Set<string>()

  private constructor(
    readonly user: TestUser,
    readonly uuid: string,
    readonly signaturePublicKey: Uint8Array,
    readonly keys: SignatureKeys,
  ) {}

  static async of(user: TestUser): Promise<TestDevice> {
    return new TestDevice(user, randomUUID().toUpperCase(), randomBytes(32), await deviceKeys())
  }

  /** New key packages of this device (signed by its MLS key), as MLSMessages. */
  keyPackages(count: number, opts: KeyPackageOptions = {}): Promise<Uint8Array[]> {
    return Promise.all(
      Array.from({ length: count }, async () => {
        const made = await keyPackage(this.user, { signatureKeys: this.keys, ...opts })
        this.refs.add(hex(await keyPackageRef(made, opts.suite)))
        return made
      }),
    )
  }

  /** Joins a group from a Welcome with one of this device's own key packages (not another device's of its user). */
  join(welcome: Uint8Array): Promise<ClientState> {
    return joinFromWelcome(this.user, welcome, SUITE, (ref) => this.refs.has(ref))
  }

  /** registerDevice's input as the iOS client builds it (`deviceUuid`, items with `expires` 90 days on). */
  registration(keyPackages: Uint8Array[], extra: Partial<Registration> = {}): Registration {
    return {
      deviceName: 'iPhone',
      deviceUuid: this.uuid,
      keyPackages: keyPackages.map(keyPackageItem),
      signaturePublicKey: bytesJson(this.signaturePublicKey),
      ...extra,
    }
  }
}

/** A key package as registerDevice and publishKeyPackages take it. */
export const keyPackageItem = (data: Uint8Array) => ({
  keyPackage: encodeBase64(data),
  cipherSuite: SUITE,
  expires: new Date(Date.now() + 30 * DAY_MS).toISOString(),
})

/** A user's unused key packages on the server: the device each is bound to (null: none), by KeyPackageRef (hex). */
export async function unusedKeyPackages(db: Db, user: TestUser): Promise<Record<string, string | null>> {
  const rows = await db
    .selectFrom('key_package')
    .select(['ref', 'device_id'])
    .where('owner_did', '=', user.did)
    .where('consumed_at', 'is', null)
    .execute()
  return Object.fromEntries(rows.map((row) => [hex(row.ref as Uint8Array), row.device_id]))
}
