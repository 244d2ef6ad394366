# The two commands of the README: `make run` and `make test`.

.PHONY: run test check generate bench faults

# Run on embedded defaults: SQLite in ./data, in-process broker, dev outbox.
run:
	go run .

# Everything CI checks: generated code, formatting, vet, and the whole test
# suite with the race detector against a real RabbitMQ (installed and
# started on 127.0.0.1 if missing, stopped afterwards).
test:
	bash .ci/test

# Regenerate ent and gqlgen code.
generate:
	go generate ./...

# The benchmarks of BENCHMARKS.md, against the real service (the rabbitmq
# rows need AMQP_URL or a local broker), and the enumeration timing guard:
# it fails if register or resend take measurably longer for an existing
# address than for a new one.
bench:
	go test -run '^$$' -bench 'SignupToInbox|ConfirmToLive|EnumerationTiming' -benchtime 200x .
	go test -run '^$$' -bench Burst -benchtime 3x .

# The fault suite alone (RELIABILITY.md): the real binary under SIGKILL,
# RabbitMQ, SMTP and database faults, printing the fault table. make test
# runs it too. Run as root: it starts its own RabbitMQ node on 5673 and runs
# one scenario as user nobody. One scenario: make faults RUN=TestSMTPOutage
faults:
	CI=$${CI:-true} go test -tags faults -count=1 -v -timeout 12m -run '$(or $(RUN),.)' ./e2e/
