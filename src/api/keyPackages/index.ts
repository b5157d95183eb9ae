/**
 * Key packages: publishing (each checked as RFC 9420 asks), handing them out
 * once each to those who add their owners, and their counts.
 * Services: keyPackages.
 */
import { NSID } from '../../lexicon/types/index.js'
import getKeyPackages from './getKeyPackages.js'
import getKeyPackageStats from './getKeyPackageStats.js'
import publishKeyPackage from './publishKeyPackage.js'

export const keyPackageHandlers = {
  [NSID.getKeyPackages]: getKeyPackages,
  [NSID.getKeyPackageStats]: getKeyPackageStats,
  [NSID.publishKeyPackage]: publishKeyPackage,
}
