-- drop index "outboxevent_available_at" from table: "outbox_events"
DROP INDEX `outboxevent_available_at`;
-- create index "outboxevent_available_at_topic" to table: "outbox_events"
CREATE INDEX `outboxevent_available_at_topic` ON `outbox_events` (`available_at`, `topic`);
