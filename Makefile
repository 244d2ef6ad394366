# The two commands of the README: `make run` and `make test`.

.PHONY: run test check generate bench

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
