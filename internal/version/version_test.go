package version

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		info Info
		want string
	}{
		{"release", Info{Version: "v1.2.3", Revision: "abc1234def", Time: "2026-12-06T12:00:00Z", GoVersion: "go1.26.8"},
			"verifier v1.2.3 (commit abc1234, built 2026-12-06T12:00:00Z, go1.26.8)"},
		{"work tree with changes", Info{Version: "(devel)", Revision: "abc1234def", Time: "2026-12-06T12:00:00Z", Modified: true, GoVersion: "go1.26.8"},
			"verifier (devel) (commit abc1234-dirty, built 2026-12-06T12:00:00Z, go1.26.8)"},
		{"no vcs information", Info{Version: "(devel)", GoVersion: "go1.26.8"},
			"verifier (devel) (commit unknown, built unknown, go1.26.8)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.info.String())
		})
	}
}

// TestGet: a test binary has build information; the -X variables, when
// set, win over it.
func TestGet(t *testing.T) {
	i := Get()
	require.Equal(t, runtime.Version(), i.GoVersion)
	require.NotEmpty(t, i.Version)

	version, commit, date = "v9.9.9", "0123456789abcdef", "2026-01-02T03:04:05Z"
	t.Cleanup(func() { version, commit, date = "", "", "" })
	i = Get()
	require.Equal(t, "v9.9.9", i.Version)
	require.Equal(t, "0123456789abcdef", i.Revision)
	require.Equal(t, "2026-01-02T03:04:05Z", i.Time)
	require.False(t, i.Modified)
}
