/** See build-freshness.mjs. */
export function buildIsCurrent(buildInfoFile: string, configFiles: string[]): boolean
