-- add column "tokens_expire_by" to table: "signing_keys"
ALTER TABLE `signing_keys` ADD COLUMN `tokens_expire_by` datetime NULL;
