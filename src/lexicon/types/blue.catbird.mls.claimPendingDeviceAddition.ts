// Generated from lexicons/blue.catbird.mls.claimPendingDeviceAddition.json by scripts/gen-lexicon-types.ts. Do not edit.
import type * as BlueCatbirdMlsDefs from './blue.catbird.mls.defs.js'

export type Params = Record<string, never>

export interface Input {
  /** The pending addition to claim. */
  pendingAdditionId: string
}

export interface Output {
  /** True when the caller now holds the claim; false when another member holds it, or the addition is done or gone. */
  claimed: boolean
  /** The conversation the device is to be added to. */
  convoId?: string
  /** The identity of the new device: `<user DID>#<deviceId>`. */
  deviceCredentialDid?: string
  /** A key package of the new device, for the commit and Welcome that add it (with a successful claim). */
  keyPackage?: BlueCatbirdMlsDefs.KeyPackageRef
  /** The member who holds the claim, when it is not the caller. */
  claimedBy?: string
}
