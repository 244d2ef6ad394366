-- add column "revoked_at" to table: "signing_keys"
ALTER TABLE `signing_keys` ADD COLUMN `revoked_at` datetime NULL;
