package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// TestReleaseConfig checks .goreleaser.yaml's essentials on every run;
// goreleaser itself (check, and a snapshot build) runs in .ci/release on
// every CI run (RELEASE_CHECK=0 skips it), as building it takes minutes.
func TestReleaseConfig(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(".goreleaser.yaml")
	require.NoError(t, err)
	var cfg struct {
		Version int `yaml:"version"`
		Builds  []struct {
			Main    string   `yaml:"main"`
			Env     []string `yaml:"env"`
			Goos    []string `yaml:"goos"`
			Goarch  []string `yaml:"goarch"`
			Flags   []string `yaml:"flags"`
			Ldflags []string `yaml:"ldflags"`
		} `yaml:"builds"`
		Archives []struct {
			Files []string `yaml:"files"`
		} `yaml:"archives"`
		Checksum struct {
			Name string `yaml:"name_template"`
		} `yaml:"checksum"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &cfg))
	require.Equal(t, 2, cfg.Version, "goreleaser v2 schema")
	require.Len(t, cfg.Builds, 1)
	b := cfg.Builds[0]
	require.Equal(t, ".", b.Main)
	require.Contains(t, b.Env, "CGO_ENABLED=0", "static binaries")
	require.ElementsMatch(t, []string{"linux", "darwin"}, b.Goos)
	require.ElementsMatch(t, []string{"amd64", "arm64"}, b.Goarch)
	require.Contains(t, b.Flags, "-trimpath")
	for _, v := range []string{"version", "commit", "date"} {
		require.Contains(t, b.Ldflags, "-X github.com/verifier/verifier/internal/version."+v+"="+map[string]string{
			"version": "{{ .Version }}", "commit": "{{ .FullCommit }}", "date": "{{ .CommitDate }}"}[v])
	}
	require.NotEmpty(t, cfg.Checksum.Name)
	// Without these two, a config that lost its archives or their files
	// would check nothing below.
	require.NotEmpty(t, cfg.Archives, "archives")
	for _, a := range cfg.Archives {
		require.NotEmpty(t, a.Files, "each archive lists the files beside the binary")
		for _, glob := range a.Files {
			m, err := filepath.Glob(glob)
			require.NoError(t, err)
			require.NotEmpty(t, m, "archive file %s exists", glob)
		}
	}
}
