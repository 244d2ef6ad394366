-- modify "outbox_events" table
ALTER TABLE "outbox_events" ADD COLUMN "traceparent" character varying NULL;
