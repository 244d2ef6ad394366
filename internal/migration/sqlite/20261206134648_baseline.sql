-- create "deliveries" table
CREATE TABLE `deliveries` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `created_at` datetime NOT NULL, `event_id` text NOT NULL, `kind` text NOT NULL, `address` text NOT NULL DEFAULT (''), `registration` uuid NULL, `state` text NOT NULL DEFAULT ('QUEUED'), `attempts` integer NOT NULL DEFAULT (0), `reason` text NOT NULL DEFAULT (''), `topic` text NOT NULL, `payload` blob NULL, `updated_at` datetime NOT NULL, `sending_until` datetime NULL, `subject` text NULL, `text` text NULL, `html` text NULL);
-- create index "deliveries_event_id_key" to table: "deliveries"
CREATE UNIQUE INDEX `deliveries_event_id_key` ON `deliveries` (`event_id`);
-- create index "delivery_state_updated_at" to table: "deliveries"
CREATE INDEX `delivery_state_updated_at` ON `deliveries` (`state`, `updated_at`);
-- create index "delivery_registration_created_at" to table: "deliveries"
CREATE INDEX `delivery_registration_created_at` ON `deliveries` (`registration`, `created_at`);
-- create "email_budgets" table
CREATE TABLE `email_budgets` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `scope` text NOT NULL, `window_start` integer NOT NULL, `sent` integer NOT NULL);
-- create index "emailbudget_scope_window_start" to table: "email_budgets"
CREATE UNIQUE INDEX `emailbudget_scope_window_start` ON `email_budgets` (`scope`, `window_start`);
-- create index "emailbudget_window_start" to table: "email_budgets"
CREATE INDEX `emailbudget_window_start` ON `email_budgets` (`window_start`);
-- create "email_throttles" table
CREATE TABLE `email_throttles` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `email` text NOT NULL, `last_sent_ms` integer NOT NULL, `pending_event` uuid NULL);
-- create index "email_throttles_email_key" to table: "email_throttles"
CREATE UNIQUE INDEX `email_throttles_email_key` ON `email_throttles` (`email`);
-- create "outbox_events" table
CREATE TABLE `outbox_events` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `created_at` datetime NOT NULL, `event_id` uuid NOT NULL, `topic` text NOT NULL, `payload` blob NOT NULL, `available_at` datetime NOT NULL, `claim` text NULL, `attempts` integer NOT NULL DEFAULT (0));
-- create index "outbox_events_event_id_key" to table: "outbox_events"
CREATE UNIQUE INDEX `outbox_events_event_id_key` ON `outbox_events` (`event_id`);
-- create index "outboxevent_available_at" to table: "outbox_events"
CREATE INDEX `outboxevent_available_at` ON `outbox_events` (`available_at`);
-- create "registrations" table
CREATE TABLE `registrations` (`id` uuid NOT NULL, `created_at` datetime NOT NULL, `watch_token_hash` text NOT NULL, `purpose` text NOT NULL, `email` text NOT NULL, `password_hash` text NULL, `code_hash` text NULL, `code_expires_at` datetime NULL, `code_attempts` integer NOT NULL DEFAULT (0), `redirect_to` text NULL, `locale` text NOT NULL DEFAULT ('en'), `superseded_at` datetime NULL, `expires_at` datetime NOT NULL, `user_id` uuid NULL, PRIMARY KEY (`id`), CONSTRAINT `registrations_users_registrations` FOREIGN KEY (`user_id`) REFERENCES `users` (`id`) ON DELETE SET NULL);
-- create index "registrations_watch_token_hash_key" to table: "registrations"
CREATE UNIQUE INDEX `registrations_watch_token_hash_key` ON `registrations` (`watch_token_hash`);
-- create index "registration_expires_at" to table: "registrations"
CREATE INDEX `registration_expires_at` ON `registrations` (`expires_at`);
-- create index "registration_user_id_created_at" to table: "registrations"
CREATE INDEX `registration_user_id_created_at` ON `registrations` (`user_id`, `created_at`);
-- create "secrets" table
CREATE TABLE `secrets` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `created_at` datetime NOT NULL, `name` text NOT NULL, `value` blob NOT NULL);
-- create index "secrets_name_key" to table: "secrets"
CREATE UNIQUE INDEX `secrets_name_key` ON `secrets` (`name`);
-- create "signing_keys" table
CREATE TABLE `signing_keys` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `kid` text NOT NULL, `public_key` blob NOT NULL, `private_key` blob NULL, `current` bool NULL, `created_at` datetime NOT NULL, `retired_at` datetime NULL);
-- create index "signing_keys_kid_key" to table: "signing_keys"
CREATE UNIQUE INDEX `signing_keys_kid_key` ON `signing_keys` (`kid`);
-- create index "signingkey_current" to table: "signing_keys"
CREATE UNIQUE INDEX `signingkey_current` ON `signing_keys` (`current`);
-- create "users" table
CREATE TABLE `users` (`id` uuid NOT NULL, `created_at` datetime NOT NULL, `email` text NOT NULL, `password_hash` text NOT NULL, `status` text NOT NULL DEFAULT ('UNVERIFIED'), `verified_at` datetime NULL, PRIMARY KEY (`id`));
-- create index "users_email_key" to table: "users"
CREATE UNIQUE INDEX `users_email_key` ON `users` (`email`);
-- create "verification_tokens" table
CREATE TABLE `verification_tokens` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `created_at` datetime NOT NULL, `token_hash` text NOT NULL, `expires_at` datetime NOT NULL, `used_at` datetime NULL, `registration_id` uuid NULL, `user_id` uuid NOT NULL, CONSTRAINT `verification_tokens_registrations_verification_tokens` FOREIGN KEY (`registration_id`) REFERENCES `registrations` (`id`) ON DELETE SET NULL, CONSTRAINT `verification_tokens_users_verification_tokens` FOREIGN KEY (`user_id`) REFERENCES `users` (`id`) ON DELETE NO ACTION);
-- create index "verification_tokens_token_hash_key" to table: "verification_tokens"
CREATE UNIQUE INDEX `verification_tokens_token_hash_key` ON `verification_tokens` (`token_hash`);
-- create index "verificationtoken_expires_at" to table: "verification_tokens"
CREATE INDEX `verificationtoken_expires_at` ON `verification_tokens` (`expires_at`);
-- create "webhook_deliveries" table
CREATE TABLE `webhook_deliveries` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `created_at` datetime NOT NULL, `endpoint` text NOT NULL, `event_id` uuid NOT NULL, `type` text NOT NULL, `payload` blob NOT NULL, `state` text NOT NULL DEFAULT ('PENDING'), `attempts` integer NOT NULL DEFAULT (0), `next_attempt_at` datetime NOT NULL, `claim` text NOT NULL DEFAULT (''), `last_error` text NOT NULL DEFAULT (''), `pending_since` datetime NOT NULL, `updated_at` datetime NOT NULL);
-- create index "webhookdelivery_event_id_endpoint" to table: "webhook_deliveries"
CREATE UNIQUE INDEX `webhookdelivery_event_id_endpoint` ON `webhook_deliveries` (`event_id`, `endpoint`);
-- create index "webhookdelivery_endpoint_state_next_attempt_at" to table: "webhook_deliveries"
CREATE INDEX `webhookdelivery_endpoint_state_next_attempt_at` ON `webhook_deliveries` (`endpoint`, `state`, `next_attempt_at`);
-- create index "webhookdelivery_state_updated_at" to table: "webhook_deliveries"
CREATE INDEX `webhookdelivery_state_updated_at` ON `webhook_deliveries` (`state`, `updated_at`);
