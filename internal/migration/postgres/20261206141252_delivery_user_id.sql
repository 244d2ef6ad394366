-- modify "deliveries" table
ALTER TABLE "deliveries" ADD COLUMN "user_id" uuid NULL;
-- create index "delivery_user_id_created_at" to table: "deliveries"
CREATE INDEX "delivery_user_id_created_at" ON "deliveries" ("user_id", "created_at");
