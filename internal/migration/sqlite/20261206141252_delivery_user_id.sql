-- disable the enforcement of foreign-keys constraints
PRAGMA foreign_keys = off;
-- create "new_deliveries" table
CREATE TABLE `new_deliveries` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `created_at` datetime NOT NULL, `event_id` text NOT NULL, `kind` text NOT NULL, `address` text NOT NULL DEFAULT (''), `registration` uuid NULL, `user_id` uuid NULL, `state` text NOT NULL DEFAULT ('QUEUED'), `attempts` integer NOT NULL DEFAULT (0), `reason` text NOT NULL DEFAULT (''), `topic` text NOT NULL, `payload` blob NULL, `updated_at` datetime NOT NULL, `sending_until` datetime NULL, `subject` text NULL, `text` text NULL, `html` text NULL);
-- copy rows from old table "deliveries" to new temporary table "new_deliveries"
INSERT INTO `new_deliveries` (`id`, `created_at`, `event_id`, `kind`, `address`, `registration`, `state`, `attempts`, `reason`, `topic`, `payload`, `updated_at`, `sending_until`, `subject`, `text`, `html`) SELECT `id`, `created_at`, `event_id`, `kind`, `address`, `registration`, `state`, `attempts`, `reason`, `topic`, `payload`, `updated_at`, `sending_until`, `subject`, `text`, `html` FROM `deliveries`;
-- drop "deliveries" table after copying rows
DROP TABLE `deliveries`;
-- rename temporary table "new_deliveries" to "deliveries"
ALTER TABLE `new_deliveries` RENAME TO `deliveries`;
-- create index "deliveries_event_id_key" to table: "deliveries"
CREATE UNIQUE INDEX `deliveries_event_id_key` ON `deliveries` (`event_id`);
-- create index "delivery_state_updated_at" to table: "deliveries"
CREATE INDEX `delivery_state_updated_at` ON `deliveries` (`state`, `updated_at`);
-- create index "delivery_registration_created_at" to table: "deliveries"
CREATE INDEX `delivery_registration_created_at` ON `deliveries` (`registration`, `created_at`);
-- create index "delivery_user_id_created_at" to table: "deliveries"
CREATE INDEX `delivery_user_id_created_at` ON `deliveries` (`user_id`, `created_at`);
-- enable back the enforcement of foreign-keys constraints
PRAGMA foreign_keys = on;
