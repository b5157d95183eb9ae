/**
 * Key packages: publishing (each checked as RFC 9420 asks), one or a batch,
 * handing them out once each to those who add their owners (one per device
 * of each), their counts, status and history, and a device's reconciled
 * with those it holds.
 * Services: keyPackages, devices.
 */
import { NSID } from '../../lexicon/types/index.js'
import getKeyPackageHistory from './getKeyPackageHistory.js'
import getKeyPackages from './getKeyPackages.js'
import getKeyPackageStats from './getKeyPackageStats.js'
import getKeyPackageStatus from './getKeyPackageStatus.js'
import publishKeyPackage from './publishKeyPackage.js'
import publishKeyPackages from './publishKeyPackages.js'
import syncKeyPackages from './syncKeyPackages.js'

export const keyPackageHandlers = {
  [NSID.getKeyPackageHistory]: getKeyPackageHistory,
  [NSID.getKeyPackages]: getKeyPackages,
  [NSID.getKeyPackageStats]: getKeyPackageStats,
  [NSID.getKeyPackageStatus]: getKeyPackageStatus,
  [NSID.publishKeyPackage]: publishKeyPackage,
  [NSID.publishKeyPackages]: publishKeyPackages,
  [NSID.syncKeyPackages]: syncKeyPackages,
}
