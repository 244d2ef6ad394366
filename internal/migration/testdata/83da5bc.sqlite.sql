-- The schema release 83da5bc created with ent's auto-migration on an empty
-- sqlite database (the statements it ran), for the tests of adopting a database
-- made before versioned migrations. Written once from that commit's
-- ent/migrate; never regenerated.
CREATE TABLE `deliveries` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `created_at` datetime NOT NULL, `event_id` text NOT NULL, `kind` text NOT NULL, `address` text NOT NULL DEFAULT (''), `registration` uuid NULL, `state` text NOT NULL DEFAULT ('QUEUED'), `attempts` integer NOT NULL DEFAULT (0), `reason` text NOT NULL DEFAULT (''), `topic` text NOT NULL, `payload` blob NULL, `updated_at` datetime NOT NULL, `sending_until` datetime NULL, `subject` text NULL, `text` text NULL, `html` text NULL);
CREATE UNIQUE INDEX `deliveries_event_id_key` ON `deliveries` (`event_id`);
CREATE INDEX `delivery_state_updated_at` ON `deliveries` (`state`, `updated_at`);
CREATE INDEX `delivery_registration_created_at` ON `deliveries` (`registration`, `created_at`);
CREATE TABLE `email_budgets` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `scope` text NOT NULL, `window_start` integer NOT NULL, `sent` integer NOT NULL);
CREATE UNIQUE INDEX `emailbudget_scope_window_start` ON `email_budgets` (`scope`, `window_start`);
CREATE INDEX `emailbudget_window_start` ON `email_budgets` (`window_start`);
CREATE TABLE `email_throttles` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `email` text NOT NULL, `last_sent_ms` integer NOT NULL, `pending_event` uuid NULL);
CREATE UNIQUE INDEX `email_throttles_email_key` ON `email_throttles` (`email`);
CREATE TABLE `outbox_events` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `created_at` datetime NOT NULL, `event_id` uuid NOT NULL, `topic` text NOT NULL, `payload` blob NOT NULL, `available_at` datetime NOT NULL, `claim` text NULL, `attempts` integer NOT NULL DEFAULT (0));
CREATE UNIQUE INDEX `outbox_events_event_id_key` ON `outbox_events` (`event_id`);
CREATE INDEX `outboxevent_available_at` ON `outbox_events` (`available_at`);
CREATE TABLE `secrets` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `created_at` datetime NOT NULL, `name` text NOT NULL, `value` blob NOT NULL);
CREATE UNIQUE INDEX `secrets_name_key` ON `secrets` (`name`);
CREATE TABLE `users` (`id` uuid NOT NULL, `created_at` datetime NOT NULL, `email` text NOT NULL, `password_hash` text NOT NULL, `status` text NOT NULL DEFAULT ('UNVERIFIED'), `verified_at` datetime NULL, PRIMARY KEY (`id`));
CREATE UNIQUE INDEX `users_email_key` ON `users` (`email`);
CREATE TABLE `verification_tokens` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `created_at` datetime NOT NULL, `token_hash` text NOT NULL, `expires_at` datetime NOT NULL, `used_at` datetime NULL, `user_id` uuid NOT NULL, CONSTRAINT `verification_tokens_users_verification_tokens` FOREIGN KEY (`user_id`) REFERENCES `users` (`id`) ON DELETE NO ACTION);
CREATE UNIQUE INDEX `verification_tokens_token_hash_key` ON `verification_tokens` (`token_hash`);
CREATE INDEX `verificationtoken_expires_at` ON `verification_tokens` (`expires_at`);
CREATE TABLE `watch_tokens` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `created_at` datetime NOT NULL, `token_hash` text NOT NULL, `registration` uuid NULL, `expires_at` datetime NOT NULL, `user_id` uuid NULL, CONSTRAINT `watch_tokens_users_watch_tokens` FOREIGN KEY (`user_id`) REFERENCES `users` (`id`) ON DELETE SET NULL);
CREATE UNIQUE INDEX `watch_tokens_token_hash_key` ON `watch_tokens` (`token_hash`);
CREATE UNIQUE INDEX `watch_tokens_registration_key` ON `watch_tokens` (`registration`);
CREATE INDEX `watchtoken_expires_at` ON `watch_tokens` (`expires_at`);
CREATE INDEX `watchtoken_user_id_created_at` ON `watch_tokens` (`user_id`, `created_at`);
