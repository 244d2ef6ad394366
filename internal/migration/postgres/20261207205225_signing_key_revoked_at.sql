-- modify "signing_keys" table
ALTER TABLE "signing_keys" ADD COLUMN "revoked_at" timestamptz NULL;
