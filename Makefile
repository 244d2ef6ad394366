# The two commands of the README: `make run` and `make test`.

.PHONY: run test check generate migration bench faults

# Run on embedded defaults: SQLite in ./data, in-process broker, dev outbox.
run:
	go run .

# Everything CI checks: generated code, formatting, vet, and the whole test
# suite with the race detector against a real RabbitMQ (installed and
# started on 127.0.0.1 if missing, stopped afterwards).
test:
	bash .ci/test

# Regenerate ent and gqlgen code, and the SQLite migration of a change of
# ent/schema (PostgreSQL's too when POSTGRES_URL is set).
generate:
	go generate ./...

# The migration of a change of ent/schema, named, for both dialects:
# PostgreSQL's diff needs a server (POSTGRES_URL, a role that may create
# databases; a scratch database is created and dropped).
#   POSTGRES_URL=postgres://... make migration NAME=add_something
migration:
	@test -n "$$POSTGRES_URL" || { echo "make migration: set POSTGRES_URL (the PostgreSQL migration needs a server)" >&2; exit 2; }
	go generate ./ent
	go run ./internal/migration/gen -dir internal/migration -name $(or $(NAME),changes)

# The table of BENCHMARKS.md: bench/ drives the real service (a child
# process) through its public API and prints every figure of issue 7's
# targets, with the machine's argon2id-only ceiling measured in the same
# run, on embedded defaults, plus RabbitMQ when AMQP_URL is set and
# PostgreSQL + RabbitMQ when POSTGRES_URL is set too. Then the enumeration
# timing guard: it fails if register or resend take measurably longer for
# an existing address than for a new one. Then what an email costs on an
# open SMTP session, nearby and 10 ms away, with and without PIPELINING.
bench:
	go run ./bench
	go test -run '^$$' -bench 'EnumerationTiming|SignInTiming' -benchtime 200x .
	go test -run '^$$' -bench SMTPSend ./internal/mail/

# The fault suite alone (RELIABILITY.md): the real binary under SIGKILL,
# RabbitMQ, SMTP and database faults, printing the fault table. make test
# runs it too. Run as root: it starts its own RabbitMQ node on 5673 and runs
# one scenario as user nobody. One scenario: make faults RUN=TestSMTPOutage;
# COUNT=10 runs it ten times and asserts duplicates under 0.1 % across the
# runs (RELIABILITY.md, the SIGKILL tally).
faults:
	CI=$${CI:-true} go test -tags faults -count=$(or $(COUNT),1) -v -timeout $(if $(COUNT),60m,12m) -run '$(or $(RUN),.)' ./e2e/
