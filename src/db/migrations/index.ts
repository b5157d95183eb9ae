import type { Migration } from 'kysely'
import * as m001 from './001_init.js'
import * as m002 from './002_message_events.js'
import * as m003 from './003_mls_facts.js'
import * as m004 from './004_idempotency_shard_key.js'
import * as m005 from './005_recovery.js'
import * as m006 from './006_shard_keys.js'
import * as m007 from './007_admitted_key_packages.js'
import * as m008 from './008_devices.js'
import * as m009 from './009_live_events.js'
import * as m010 from './010_administration.js'
import * as m011 from './011_push.js'

/**
 * Every migration, by name, in order. Listed statically (not read from disk) so
 * the same code runs from TypeScript sources and from the compiled build.
 */
export const migrations: Record<string, Migration> = {
  '001_init': m001,
  '002_message_events': m002,
  '003_mls_facts': m003,
  '004_idempotency_shard_key': m004,
  '005_recovery': m005,
  '006_shard_keys': m006,
  '007_admitted_key_packages': m007,
  '008_devices': m008,
  '009_live_events': m009,
  '010_administration': m010,
  '011_push': m011,
}
