package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// runCommand runs the real process with env and args to its end and
// returns its exit code, stdout and stderr.
func runCommand(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	cmd := verifierProcess(t, env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		require.NoError(t, err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// `verifier migrate` applies and prints the migrations once; -check tells
// pending from done; MIGRATE=off refuses to start on a database behind.
func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"DATABASE_URL": "sqlite:" + filepath.Join(dir, "verifier.db")}

	// -check changes nothing: a database not made yet is pending, and
	// neither it nor its directory is made.
	code, out, _ := runCommand(t, env, "migrate", "-check")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "migrations pending")
	require.NoDirExists(t, dir)

	off := map[string]string{"MIGRATE": "off", "HTTP_ADDR": "127.0.0.1:0"}
	for k, v := range env {
		off[k] = v
	}
	code, stderr := startFails(t, off)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "verifier migrate")

	code, out, stderr = runCommand(t, env, "migrate")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `(?m)^applied \d{14} baseline$`, out)

	code, out, stderr = runCommand(t, env, "migrate")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "up to date")

	code, out, _ = runCommand(t, env, "migrate", "-check")
	require.Equal(t, 0, code, out)

	// A database that cannot be opened is not "pending": a pipeline
	// waiting for a migration must not wait on a bad DATABASE_URL.
	file := filepath.Join(t.TempDir(), "a-file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	bad := map[string]string{"DATABASE_URL": "sqlite:" + filepath.Join(file, "verifier.db")}
	code, _, stderr = runCommand(t, bad, "migrate", "-check")
	require.Equal(t, checkFailed, code, stderr)
	require.Contains(t, stderr, "cannot check the schema")
}

// `verifier migrate check` (the dash forgotten) is no -check: it applied
// the migrations the operator meant to look at. An argument migrate does
// not take is refused with the usage, and nothing is applied.
func TestMigrateRefusesArguments(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "verifier.db")}
	for _, args := range [][]string{{"check"}, {"-check", "now"}} {
		code, out, stderr := runCommand(t, env, append([]string{"migrate"}, args...)...)
		require.Equal(t, 2, code, "%v: %s%s", args, out, stderr)
		require.Contains(t, stderr, "Usage: verifier migrate")
		require.NotContains(t, out, "applied")
	}
	code, out, _ := runCommand(t, env, "migrate", "-check")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "migrations pending")
}
