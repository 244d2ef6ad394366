-- disable the enforcement of foreign-keys constraints
PRAGMA foreign_keys = off;
-- create "new_webhook_deliveries" table
CREATE TABLE `new_webhook_deliveries` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `created_at` datetime NOT NULL, `endpoint` text NOT NULL, `event_id` uuid NOT NULL, `type` text NOT NULL, `user_id` uuid NULL, `payload` blob NOT NULL, `state` text NOT NULL DEFAULT ('PENDING'), `attempts` integer NOT NULL DEFAULT (0), `next_attempt_at` datetime NOT NULL, `claim` text NOT NULL DEFAULT (''), `last_error` text NOT NULL DEFAULT (''), `pending_since` datetime NOT NULL, `updated_at` datetime NOT NULL);
-- copy rows from old table "webhook_deliveries" to new temporary table "new_webhook_deliveries"
INSERT INTO `new_webhook_deliveries` (`id`, `created_at`, `endpoint`, `event_id`, `type`, `payload`, `state`, `attempts`, `next_attempt_at`, `claim`, `last_error`, `pending_since`, `updated_at`) SELECT `id`, `created_at`, `endpoint`, `event_id`, `type`, `payload`, `state`, `attempts`, `next_attempt_at`, `claim`, `last_error`, `pending_since`, `updated_at` FROM `webhook_deliveries`;
-- drop "webhook_deliveries" table after copying rows
DROP TABLE `webhook_deliveries`;
-- rename temporary table "new_webhook_deliveries" to "webhook_deliveries"
ALTER TABLE `new_webhook_deliveries` RENAME TO `webhook_deliveries`;
-- create index "webhookdelivery_event_id_endpoint" to table: "webhook_deliveries"
CREATE UNIQUE INDEX `webhookdelivery_event_id_endpoint` ON `webhook_deliveries` (`event_id`, `endpoint`);
-- create index "webhookdelivery_endpoint_state_next_attempt_at" to table: "webhook_deliveries"
CREATE INDEX `webhookdelivery_endpoint_state_next_attempt_at` ON `webhook_deliveries` (`endpoint`, `state`, `next_attempt_at`);
-- create index "webhookdelivery_state_updated_at" to table: "webhook_deliveries"
CREATE INDEX `webhookdelivery_state_updated_at` ON `webhook_deliveries` (`state`, `updated_at`);
-- create index "webhookdelivery_user_id" to table: "webhook_deliveries"
CREATE INDEX `webhookdelivery_user_id` ON `webhook_deliveries` (`user_id`);
-- enable back the enforcement of foreign-keys constraints
PRAGMA foreign_keys = on;
