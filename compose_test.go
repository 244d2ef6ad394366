package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/verifier/verifier/internal/config"
)

// TestComposeSettings: this machine runs no containers, so compose.yaml
// is checked here. Every variable set on a verifier service is a setting
// of config.Settings, and the values together pass config.Load, so the
// file cannot drift from the settings; the proxy and the image agree with
// the listen address.
func TestComposeSettings(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("compose.yaml")
	require.NoError(t, err)
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &compose))

	known := map[string]bool{}
	for _, s := range config.Settings {
		known[s.Name] = true
	}
	var verifiers []string
	for name, svc := range compose.Services {
		if svc.Image != "verifier:local" {
			continue
		}
		verifiers = append(verifiers, name)
		env := svc.Environment
		for k := range env {
			require.True(t, known[k], "service %s sets %s, which is no setting of config.Settings", name, k)
		}
		_, err := config.Load(func(k string) string { return env[k] })
		require.NoError(t, err, "service %s's settings", name)
		require.Equal(t, ":8080", env["HTTP_ADDR"], "Dockerfile's EXPOSE and the Caddyfile's port")
	}
	slices.Sort(verifiers)
	require.Equal(t, []string{"api", "worker"}, verifiers)
	require.Equal(t, "api", compose.Services["api"].Environment["ROLE"])
	require.Equal(t, "worker", compose.Services["worker"].Environment["ROLE"])

	caddy, err := os.ReadFile("deploy/Caddyfile")
	require.NoError(t, err)
	require.Contains(t, string(caddy), "name api\n\t\t\tport 8080")
	docker, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	require.Contains(t, string(docker), "EXPOSE 8080")
	for _, v := range []string{"version", "commit", "date"} {
		require.Contains(t, string(docker), "-X github.com/verifier/verifier/internal/version."+v+"=", "the -X flags name internal/version's variables")
	}
	require.True(t, strings.Contains(string(docker), "CGO_ENABLED=0"))
}
