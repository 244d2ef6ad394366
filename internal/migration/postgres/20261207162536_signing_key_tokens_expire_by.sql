-- modify "signing_keys" table
ALTER TABLE "signing_keys" ADD COLUMN "tokens_expire_by" timestamptz NULL;
