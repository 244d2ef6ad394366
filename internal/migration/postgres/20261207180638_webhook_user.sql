-- modify "webhook_deliveries" table
ALTER TABLE "webhook_deliveries" ADD COLUMN "user_id" uuid NULL;
-- create index "webhookdelivery_user_id" to table: "webhook_deliveries"
CREATE INDEX "webhookdelivery_user_id" ON "webhook_deliveries" ("user_id");
