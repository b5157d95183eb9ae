-- Each table distributed by its shard key, all co-located with the
-- conversations (the same hash of the same text lands on the same node): see
-- README, "Scaling". Run by scripts/citus.sh and by the suite on Citus
-- (test/helpers/database.ts).
SELECT create_distributed_table('convo', 'id');
SELECT create_distributed_table(t, 'convo_id', colocate_with => 'convo')
  FROM unnest(ARRAY['member', 'message', 'commit', 'group_info', 'welcome', 'welcome_delivery', 'admitted_key_package',
                    'convo_policy', 'admin_action', 'member_report', 'member_device', 'pending_device_addition',
                    'convo_event']) AS t;
SELECT create_distributed_table('key_package', 'owner_did', colocate_with => 'convo');
SELECT create_distributed_table('last_resort_handout', 'owner_did', colocate_with => 'convo');
SELECT create_distributed_table('idempotency_key', 'shard_key', colocate_with => 'convo');
-- A user's devices, opt-out and blocks live with the user's key packages.
SELECT create_distributed_table('device', 'user_did', colocate_with => 'convo');
SELECT create_distributed_table('opt_out', 'did', colocate_with => 'convo');
SELECT create_distributed_table('user_block', 'blocker_did', colocate_with => 'convo');
-- A WebSocket's ticket by its hash: the instance that redeems it may be any.
SELECT create_distributed_table('subscription_ticket', 'ticket_hash', colocate_with => 'convo');
-- Push (migration 011): tokens and retries by user, with their devices; the outbox by conversation.
SELECT create_distributed_table(t, 'user_did', colocate_with => 'convo')
  FROM unnest(ARRAY['push_token', 'push_retry']) AS t;
SELECT create_distributed_table('push_outbox', 'convo_id', colocate_with => 'convo');
SELECT create_reference_table('convo_group_before_006');
SELECT create_reference_table('account_takedown');
