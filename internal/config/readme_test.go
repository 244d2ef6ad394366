package config

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadmeListsEverySetting: the README's settings table (under
// "## Configuration") has one row per entry of Settings, with its default
// as -help shows it, and no row for a setting that is gone.
func TestReadmeListsEverySetting(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n## Configuration\n")
	require.True(t, ok, "README has a Configuration section")
	section, _, _ = strings.Cut(section, "\n## ")

	row := regexp.MustCompile("(?m)^\\| `([A-Z0-9_]+)` \\| ([^|]+) \\|")
	defaults := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		_, twice := defaults[m[1]]
		require.False(t, twice, "README lists %s twice", m[1])
		defaults[m[1]] = strings.TrimSpace(m[2])
	}
	for _, s := range Settings {
		want := "`" + s.Default + "`"
		if s.Default == "" {
			want = "empty"
		}
		got, ok := defaults[s.Name]
		require.True(t, ok, "README's settings table has no row for %s", s.Name)
		require.Equal(t, want, got, "README's default of %s", s.Name)
		delete(defaults, s.Name)
	}
	require.Empty(t, defaults, "README lists settings that config.Settings does not")
}
