// Package docs embeds the documents the service serves as they are in the
// repository: asyncapi.yaml, the public events (GET /asyncapi.yaml).
package docs

import _ "embed"

// AsyncAPI is asyncapi.yaml, byte for byte.
//
//go:embed asyncapi.yaml
var AsyncAPI []byte
