-- add column "traceparent" to table: "outbox_events"
ALTER TABLE `outbox_events` ADD COLUMN `traceparent` text NULL;
