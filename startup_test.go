package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/config"
	"github.com/verifier/verifier/internal/testkit"
)

// runMainEnv makes this test binary run main() instead of the tests, so
// the tests below see the real process: its exit code, its stderr, with
// nothing of the test environment.
const runMainEnv = "VERIFIER_TEST_RUN_MAIN"

func init() {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
}

// verifierProcess is main() started in a process of its own with exactly
// env (and args), in a fresh working directory.
func verifierProcess(t *testing.T, env map[string]string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{runMainEnv + "=1", "PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// startFails runs the process and returns its exit code and stderr; it
// must end by itself.
func startFails(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	cmd := verifierProcess(t, env, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		require.NoError(t, err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

const pw = "Sup3rSecretPw"

func TestStartRefusesBadConfiguration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want []string // each must be on stderr
	}{
		{
			name: "dev outbox on a public PUBLIC_URL",
			env:  map[string]string{"PUBLIC_URL": "https://verify.example.com"},
			want: []string{"SMTP_URL", "DEV_MAILBOX=true", "/dev/mail"},
		},
		{
			name: "DEV_MAILBOX=false without SMTP_URL",
			env:  map[string]string{"DEV_MAILBOX": "false"},
			want: []string{"SMTP_URL: required with DEV_MAILBOX=false"},
		},
		{
			name: "several bad settings, all reported, no password",
			env: map[string]string{
				"MAIL_FROM":    "not an address",
				"PUBLIC_URL":   "http://localhost:8080/?x=1",
				"TOKEN_TTL":    "1ns",
				"AMQP_URL":     "amqp://guest:" + pw + "@rabbit:99999/",
				"SMTP_URL":     "smtp://user:" + pw + "@mail:7x",
				"DATABASE_URL": "postgres://verifier:" + pw + "@db/x?sslmode=sometimes",
			},
			want: []string{"MAIL_FROM:", "PUBLIC_URL:", "TOKEN_TTL:", "AMQP_URL:", "SMTP_URL:", "DATABASE_URL:", "amqp://guest:xxxxx@rabbit:99999/"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stderr := startFails(t, tt.env)
			require.Equal(t, 2, code, "exits non-zero at start; stderr:\n%s", stderr)
			require.True(t, strings.HasPrefix(stderr, "verifier: invalid configuration"), stderr)
			for _, w := range tt.want {
				require.Contains(t, stderr, w)
			}
			require.NotContains(t, stderr, pw, "no password echoed")
		})
	}
}

// TestUnknownArgumentIsNamed: a flag or word verifier does not take (an
// operator who expects -port or -http-addr) is named before the usage,
// which says settings are environment variables, and the exit is 2.
func TestUnknownArgumentIsNamed(t *testing.T) {
	t.Parallel()
	for bad, args := range map[string][]string{"-http-addr": {"-http-addr", ":9000"}, "serve": {"serve"}, "extra": {"-version", "extra"}} {
		code, stderr := startFails(t, nil, args...)
		require.Equal(t, 2, code, stderr)
		first, _, _ := strings.Cut(stderr, "\n")
		require.Equal(t, `verifier: unknown argument "`+bad+`": verifier takes its settings from environment variables (HTTP_ADDR=:9000 verifier), listed below`, first)
		require.Contains(t, stderr, "Usage: verifier")
	}
}

// TestBusyPortNamesTheSetting: a port another process holds stops the
// start (exit 1) with the setting that named it, so the operator knows
// which to change.
func TestBusyPortNamesTheSetting(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	for _, key := range []string{"HTTP_ADDR", "METRICS_ADDR"} {
		env := map[string]string{"HTTP_ADDR": "127.0.0.1:0", key: taken.Addr().String()}
		code, stderr := startFails(t, env)
		require.Equal(t, 1, code, stderr)
		require.Contains(t, stderr, "("+key+"): listen on "+taken.Addr().String()+": another process already listens there: stop it, or give this setting another port")
		require.Contains(t, stderr, "address already in use")
	}
}

// TestHelpListsEverySetting: -help lists every setting as it is set,
// NAME=DEFAULT (or NAME (empty)), its meaning below, and fits a terminal
// of 80 columns (a table row per setting ran to 255).
func TestHelpListsEverySetting(t *testing.T) {
	t.Parallel()
	code, stderr := startFails(t, nil, "-help")
	require.Zero(t, code)
	for _, s := range config.Settings {
		head := regexp.QuoteMeta(s.Name + "=" + s.Default)
		if s.Default == "" {
			head = regexp.QuoteMeta(s.Name + " (empty)")
		}
		require.Regexp(t, `(?m)^  `+head+`\n      \S`, stderr, "a line with default and help for %s", s.Name)
	}
	require.Contains(t, stderr, "\n  PUBLIC_URL=http://localhost:<HTTP_ADDR's port>\n", "PUBLIC_URL's default is the rule")
	for i, l := range strings.Split(stderr, "\n") {
		require.LessOrEqual(t, utf8.RuneCountInString(l), 80, "line %d of -help: %q", i+1, l)
	}
	require.Contains(t, stderr, "verifier signing-key list|rotate (see 'verifier signing-key -help')")
}

// `verifier signing-key` is the operator's command for the signing keys
// (internal/keycmd, tested there): the binary reaches it.
func TestSigningKeyCommand(t *testing.T) {
	t.Parallel()
	code, stderr := startFails(t, nil, "signing-key")
	require.Equal(t, 2, code, stderr)
	require.Contains(t, stderr, "verifier signing-key rotate")

	cmd := verifierProcess(t, map[string]string{"DATABASE_URL": "sqlite:verifier.db"}, "signing-key", "rotate")
	out, err := cmd.Output()
	require.NoError(t, err)
	require.Contains(t, string(out), "new current key")
}

// Ctrl-C while `signing-key rotate` waits between publishing the new key
// and signing with it ends the command with a word on what is left (the
// key, listed and unused) and what to do, not silently.
func TestSigningKeyRotateInterrupted(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "verifier.db")}
	_, err := verifierProcess(t, env, "signing-key", "rotate").Output() // the first key: current at once
	require.NoError(t, err)

	cmd := verifierProcess(t, env, "signing-key", "rotate")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	lines := bufio.NewScanner(stdout)
	for lines.Scan() && !strings.HasPrefix(lines.Text(), "waiting ") {
	}
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	for lines.Scan() {
	}
	_ = cmd.Wait()
	require.Equal(t, 1, cmd.ProcessState.ExitCode(), "%s", stderr.String())
	require.Contains(t, stderr.String(), "is listed but does not sign: run rotate again")
}

// TestStartsOnDefaults is `go run .` on a fresh clone: no settings at all
// (but a free port) start the service with the dev outbox, and nothing to
// warn about.
func TestStartsOnDefaults(t *testing.T) {
	t.Parallel()
	cmd, lines := startUntilListening(t, map[string]string{"HTTP_ADDR": "127.0.0.1:0"})
	require.Contains(t, lines[len(lines)-1], "dev outbox")
	for _, l := range lines {
		require.NotContains(t, l, "level=WARN")
	}
	stop(t, cmd)
	require.FileExists(t, filepath.Join(cmd.Dir, "data", "verifier.db"))
}

// TestStartLineNamesItsServers: the start line says which database, broker
// and mail server this process uses (an operator running several
// deployments must tell them apart), never a password.
func TestStartLineNamesItsServers(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "ops.db")
	cmd, lines := startUntilListening(t, map[string]string{
		"HTTP_ADDR":    "127.0.0.1:0",
		"DATABASE_URL": "sqlite:" + db,
		"SMTP_URL":     "smtp://mailer:pw-5xq@127.0.0.1:2599",
	})
	start := lines[len(lines)-1]
	require.Contains(t, start, `database="sqlite3 at `+db+`"`)
	require.Contains(t, start, `broker=in-process`)
	require.Contains(t, start, `mail="SMTP at 127.0.0.1:2599"`)
	for _, l := range lines {
		require.NotContains(t, l, "pw-5xq")
		require.NotContains(t, l, "mailer")
	}
	stop(t, cmd)
}

// TestStartWarnsOfACooldownAsLongAsALink: a valid setting that is probably
// not meant is logged once at start, before the service listens.
func TestStartWarnsOfACooldownAsLongAsALink(t *testing.T) {
	t.Parallel()
	cmd, lines := startUntilListening(t, map[string]string{"HTTP_ADDR": "127.0.0.1:0", "TOKEN_TTL": "3s", "RESEND_COOLDOWN": "60s"})
	var warned []string
	for _, l := range lines {
		if strings.Contains(l, "level=WARN") {
			warned = append(warned, l)
		}
	}
	require.Len(t, warned, 1)
	require.Contains(t, warned[0], "RESEND_COOLDOWN (1m) is not shorter than TOKEN_TTL (3s)")
	stop(t, cmd)
}

// startUntilListening starts the service with env and returns its stderr
// lines up to the one that says it listens (the last), and the process,
// its stderr drained from then on.
func startUntilListening(t *testing.T, env map[string]string) (*exec.Cmd, []string) {
	t.Helper()
	cmd := verifierProcess(t, env)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	scan := bufio.NewScanner(stderr)
	var lines []string
	for scan.Scan() {
		lines = append(lines, scan.Text())
		if strings.Contains(scan.Text(), "verifier is listening") {
			go io.Copy(io.Discard, stderr) //nolint:errcheck // drained until the process exits
			return cmd, lines
		}
	}
	t.Fatalf("the service ended before it listened:\n%s", strings.Join(lines, "\n"))
	return nil, nil
}

// stop stops the process as an orchestrator does and expects a clean stop.
func stop(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "a clean stop")
}

// TestReadyzWhileWriteLockHeld: another process holding SQLite's write
// lock leaves pings working and writes failing; /readyz says 503 until
// the lock is gone, then registrations go through again.
func TestReadyzWhileWriteLockHeld(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "verifier.db")
	s := startService(t, svcOptions{env: map[string]string{"DATABASE_URL": "sqlite:" + path}})
	ready := func() (int, map[string]any) {
		t.Helper()
		resp, err := s.http.Get(s.url("/readyz"))
		require.NoError(t, err)
		defer resp.Body.Close()
		var body struct {
			Checks map[string]any `json:"checks"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return resp.StatusCode, body.Checks
	}
	code, _ := ready()
	require.Equal(t, http.StatusOK, code)

	// Waits for a write of the service in flight (its relay, its
	// checkpointer) to finish, then holds the lock.
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	defer other.Close()
	ctx := context.Background()
	holder, err := other.Conn(ctx)
	require.NoError(t, err)
	defer holder.Close()
	_, err = holder.ExecContext(ctx, "BEGIN EXCLUSIVE")
	require.NoError(t, err)

	code, checks := ready()
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "unavailable", checks["database"])

	_, err = holder.ExecContext(ctx, "ROLLBACK")
	require.NoError(t, err)
	code, _ = ready()
	require.Equal(t, http.StatusOK, code)
	s.register(t, "after-lock@example.com")
}

// TEMPLATES_DIR is checked before anything starts: a broken template stops
// the process with the file and line; a good folder starts it.
func TestStartChecksTemplates(t *testing.T) {
	t.Parallel()
	write := func(files map[string]string) string {
		dir := t.TempDir()
		for name, content := range files {
			require.NoError(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
		}
		return dir
	}
	broken := write(map[string]string{"de/verify.txt": "{{define \"subject\"}}Bitte bestätigen{{end}}\nHallo,\n{{.Linkk}}\n"})
	code, stderr := startFails(t, map[string]string{"HTTP_ADDR": "127.0.0.1:0", "TEMPLATES_DIR": broken})
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "TEMPLATES_DIR")
	require.Contains(t, stderr, filepath.Join(broken, "de", "verify.txt")+":3")
	require.Contains(t, stderr, "Linkk")
	require.NotContains(t, stderr, "verifier is listening")

	good := write(map[string]string{"fr/exists.txt": "{{define \"subject\"}}Quelqu'un a essayé{{end}}\nBonjour,\n"})
	cmd := verifierProcess(t, map[string]string{"HTTP_ADDR": "127.0.0.1:0", "TEMPLATES_DIR": good})
	out, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := bufio.NewScanner(out)
	var loaded bool
	for lines.Scan() {
		loaded = loaded || strings.Contains(lines.Text(), "email templates loaded") && strings.Contains(lines.Text(), "fr")
		if strings.Contains(lines.Text(), "verifier is listening") {
			break
		}
	}
	require.True(t, loaded, "says which locales it has")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	go io.Copy(io.Discard, out) //nolint:errcheck // drained until the process exits
	require.NoError(t, cmd.Wait(), "a clean stop")
}

// TestSecondSignalExitsAtOnce: a stop held up by an email in flight (a
// mail server that never greets, SHUTDOWN_GRACE long) waits for it; a
// second signal ends the process at once, killed by it, where the graceful
// stop would have exited 0.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	t.Parallel()
	silent, accepted := testkit.Silent(t)
	cmd, lines := startUntilListening(t, map[string]string{
		"HTTP_ADDR": "127.0.0.1:0", "SMTP_URL": "smtp://" + silent, "SHUTDOWN_GRACE": "10m",
	})
	addr := regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(lines[len(lines)-1])
	require.Len(t, addr, 2, "the listening line names its address: %s", lines[len(lines)-1])
	body, err := json.Marshal(map[string]any{"query": registerQ, "variables": map[string]any{"e": "held@example.com", "p": pw}})
	require.NoError(t, err)
	resp, err := http.Post("http://"+addr[1]+"/query", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	testkit.Receive(t, accepted, "the mailer's connection to the silent server")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Again until it ends: the first one's stop waits for the send.
	var end error
	testkit.Eventually(t, func() bool {
		select {
		case end = <-exited:
			return true
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return false
		}
	}, "the process ends on a second SIGTERM")
	var exit *exec.ExitError
	require.ErrorAs(t, end, &exit, "not the graceful stop's exit 0")
	ws, ok := exit.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.True(t, ws.Signaled(), "killed by the second signal: %v", exit)
	require.Equal(t, syscall.SIGTERM, ws.Signal())
}
