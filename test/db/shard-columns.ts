/**
 * The shard key of each distributed table: the column Citus
 * distributes it by (scripts/citus.sh), which every key of the table holds
 * and every write names with a parameter.
 */
export const SHARD_COLUMNS: Record<string, string> = {
  convo: 'id',
  member: 'convo_id',
  message: 'convo_id',
  commit: 'convo_id',
  group_info: 'convo_id',
  welcome: 'convo_id',
  welcome_delivery: 'convo_id',
  admitted_key_package: 'convo_id',
  key_package: 'owner_did',
  last_resort_handout: 'owner_did',
  idempotency_key: 'shard_key',
  device: 'user_did',
  opt_out: 'did',
  member_device: 'convo_id',
  pending_device_addition: 'convo_id',
  push_token: 'user_did',
  push_outbox: 'convo_id',
  push_retry: 'user_did',
  convo_event: 'convo_id',
  subscription_ticket: 'ticket_hash',
  convo_policy: 'convo_id',
  admin_action: 'convo_id',
  member_report: 'convo_id',
  user_block: 'blocker_did',
}
