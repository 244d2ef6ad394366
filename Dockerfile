# syntax=docker/dockerfile:1
# The verifier image: a static binary (no cgo: SQLite is modernc's pure Go)
# on distroless's static base, running as its non-root user.
#
#   docker build -t verifier --build-arg VERSION=v1.2.3 --build-arg COMMIT=$(git rev-parse HEAD) .
#
# The web app (web/dist) is committed and embedded: no Node in the build.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so a source change reuses the downloaded ones.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=bind,source=go.mod,target=go.mod \
    --mount=type=bind,source=go.sum,target=go.sum \
    go mod download
ARG VERSION=""
ARG COMMIT=""
ARG DATE=""
# -buildvcs=false: .git is not in the context (.dockerignore); the
# version comes from the build arguments instead (verifier -version).
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=bind,target=. \
    CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w \
        -X github.com/verifier/verifier/internal/version.version=${VERSION} \
        -X github.com/verifier/verifier/internal/version.commit=${COMMIT} \
        -X github.com/verifier/verifier/internal/version.date=${DATE}" \
      -o /out/verifier . \
 && mkdir -p /out/data

# distroless/static: CA certificates (SMTP over TLS, OTLP over HTTPS),
# tzdata and /etc/passwd with nonroot (65532), nothing else: no shell, so
# no HEALTHCHECK here. Orchestrators probe GET /healthz (alive) and
# GET /readyz (database and broker reachable) over HTTP instead: compose's
# proxy, Kubernetes' httpGet probes.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/verifier /verifier
# SQLite's default file (DATABASE_URL=sqlite:data/verifier.db) lands in a
# directory the nonroot user owns; mount a volume there to keep it.
COPY --from=build --chown=nonroot:nonroot /out/data /data
WORKDIR /
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/verifier"]
