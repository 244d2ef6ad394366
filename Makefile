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

bench:
	go test -run '^$$' -bench . -benchmem ./bench/

# The fault suite alone (RELIABILITY.md): the real binary under SIGKILL,
# RabbitMQ, SMTP and database faults, printing the fault table. make test
# runs it too. Run as root: it starts its own RabbitMQ node on 5673 and runs
# one scenario as user nobody. One scenario: make faults RUN=TestSMTPOutage
faults:
	CI=$${CI:-true} go test -tags faults -count=1 -v -timeout 12m -run '$(or $(RUN),.)' ./e2e/
