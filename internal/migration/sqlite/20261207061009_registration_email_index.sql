-- create index "registration_email_created_at" to table: "registrations"
CREATE INDEX `registration_email_created_at` ON `registrations` (`email`, `created_at`);
