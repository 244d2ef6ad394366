package main

import (
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestVersionOfARelease builds the binary as .goreleaser.yaml does (the
// -X flags) and runs `verifier -version`: the line on stdout, exit 0.
func TestVersionOfARelease(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "verifier")
	const pkg = "github.com/verifier/verifier/internal/version"
	ldflags := "-X " + pkg + ".version=v1.2.3 -X " + pkg + ".commit=abc1234def5678 -X " + pkg + ".date=2026-12-06T12:00:00Z"
	out, err := exec.CommandContext(t.Context(), filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath", "-ldflags", ldflags, "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)

	cmd := exec.CommandContext(t.Context(), bin, "-version")
	cmd.Env = []string{} // needs no setting
	stdout, err := cmd.Output()
	require.NoError(t, err, "exit 0")
	require.Equal(t, "verifier v1.2.3 (commit abc1234, built 2026-12-06T12:00:00Z, "+runtime.Version()+")\n", string(stdout))
}

// TestVersionSpellings: -version as the contract says, and --version and
// version from habit, each print one line on stdout and exit 0 without
// reading any setting.
func TestVersionSpellings(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-version", "--version", "version"} {
		t.Run(arg, func(t *testing.T) {
			t.Parallel()
			cmd := verifierProcess(t, map[string]string{"HTTP_ADDR": "not an address"}, arg)
			out, err := cmd.Output()
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(string(out), "verifier "), "%q", out)
			require.Contains(t, string(out), runtime.Version())
			require.Equal(t, 1, strings.Count(string(out), "\n"))
		})
	}
}

// TestMetricsAddr: with METRICS_ADDR, metrics and health have a listener
// of their own, and the public one keeps the probes but not /metrics.
func TestMetricsAddr(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{env: map[string]string{"METRICS_ADDR": "127.0.0.1:0"}})
	require.NotEmpty(t, s.metricsAddr)
	get := func(base, path string) (int, string) {
		resp, err := s.http.Get("http://" + base + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	code, body := get(s.metricsAddr, "/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `verifier_build_info{goversion="`+runtime.Version()+`"`)
	require.Contains(t, body, `verifier_emails_sent_total{kind="verification"} 0`)
	for _, p := range []string{"/healthz", "/readyz"} {
		code, _ = get(s.metricsAddr, p)
		require.Equal(t, http.StatusOK, code, p)
		code, _ = get(s.addr, p)
		require.Equal(t, http.StatusOK, code, "%s on the public port too", p)
	}
	code, _ = get(s.addr, "/metrics")
	require.NotEqual(t, http.StatusOK, code, "no /metrics on the public port")
	code, _ = get(s.metricsAddr, "/query")
	require.Equal(t, http.StatusNotFound, code, "nothing else on the metrics port")
}
