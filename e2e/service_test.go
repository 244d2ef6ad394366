//go:build faults

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/verifier/verifier/internal/testkit"
)

// startTimeout bounds a start of the binary (schema creation included) on
// a loaded CI machine; it only keeps a broken start from hanging the suite.
const startTimeout = 60 * time.Second

// stopTimeout bounds a graceful stop before the suite kills the process.
const stopTimeout = 30 * time.Second

// service is the real verifier binary, started and restarted on one
// address and one database, as an operator's supervisor would.
type service struct {
	t    testing.TB
	env  []string
	addr string // host:port, stable across restarts
	// asUser runs the binary as that user through setpriv (for faults
	// that root would ignore, such as file permissions).
	asUser *user.User
	logs   *testkit.LogBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	runs int
}

type serviceOptions struct {
	addr        string // from freeAddr
	databaseURL string
	amqpURL     string
	smtpURL     string
	asUser      *user.User
	extraEnv    map[string]string
}

// newService picks a free port and prepares the environment; start runs it.
func newService(t testing.TB, o serviceOptions) *service {
	t.Helper()
	addr := o.addr
	env := map[string]string{
		"HTTP_ADDR":    addr,
		"PUBLIC_URL":   "http://" + addr,
		"DATABASE_URL": o.databaseURL,
		"AMQP_URL":     o.amqpURL,
		"SMTP_URL":     o.smtpURL,
		"DEV_MAILBOX":  "true",
		"LOG_LEVEL":    "warn",
		// The load comes from one address far faster than people sign up;
		// the limits are tested elsewhere and would only hide faults here.
		"CLIENT_RATE_LIMIT":  "0",
		"VERIFY_RATE_LIMIT":  "0",
		"DOMAIN_EMAIL_LIMIT": "0",
		"GLOBAL_EMAIL_LIMIT": "0",
		// Each simulated person holds one websocket, all from 127.0.0.1.
		"WS_MAX_SOCKETS": "5000",
		"SHUTDOWN_GRACE": "5s",
	}
	for k, v := range o.extraEnv {
		env[k] = v
	}
	if lvl := os.Getenv("FAULTS_LOG_LEVEL"); lvl != "" {
		env["LOG_LEVEL"] = lvl
	}
	s := &service{t: t, addr: addr, asUser: o.asUser, logs: &testkit.LogBuffer{}}
	// The environment is built from scratch: nothing of the developer's
	// own settings (an AMQP_URL for the unit tests) leaks in.
	s.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
	for k, v := range env {
		s.env = append(s.env, k+"="+v)
	}
	t.Cleanup(func() {
		s.Stop()
		for _, bad := range []string{"panic:", "fatal error:", "DATA RACE"} {
			if n := s.logs.Count(bad); n > 0 {
				t.Errorf("the service log has %d %q", n, bad)
			}
		}
		if dir := os.Getenv("FAULTS_LOGDIR"); dir != "" {
			// Named per run: go test -count repeats the test's name.
			name := fmt.Sprintf("%s-%d.log", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano())
			_ = os.WriteFile(filepath.Join(dir, name), []byte(s.logs.String()), 0o644)
		}
		if t.Failed() || os.Getenv("FAULTS_VERBOSE") != "" {
			t.Logf("service log (last 60 lines):\n%s", s.logs.Tail(60))
		}
	})
	return s
}

// publicURL is the service's PUBLIC_URL.
func (s *service) publicURL() string { return "http://" + s.addr }

// Start runs the binary and waits until it answers /healthz.
func (s *service) Start() {
	s.t.Helper()
	s.mu.Lock()
	name, args := binaryPath, []string(nil)
	if s.asUser != nil {
		name = "setpriv"
		args = []string{"--reuid=" + s.asUser.Uid, "--regid=" + s.asUser.Gid, "--clear-groups", "--", binaryPath}
	}
	cmd := exec.Command(name, args...)
	cmd.Env = s.env
	cmd.Dir = os.TempDir()
	s.runs++
	fmt.Fprintf(s.logs, "=== start %d\n", s.runs)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		s.mu.Unlock()
		s.t.Fatalf("stderr pipe: %v", err)
	}
	cmd.Stdout = s.logs
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() {
		// Copy the log before Wait: Wait closes the pipe.
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(s.logs, sc.Text())
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	if err := s.waitHealthy(done); err != nil {
		s.t.Fatalf("verifier did not start: %v\nlog:\n%s", err, s.logs.Tail(40))
	}
}

// waitHealthy polls /healthz: the process is another program, so its
// answering is the only signal there is.
func (s *service) waitHealthy(exited <-chan struct{}) error {
	deadline := time.After(startTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	c := &http.Client{Timeout: time.Second}
	defer c.CloseIdleConnections()
	for {
		select {
		case <-exited:
			return fmt.Errorf("the process exited")
		case <-deadline:
			return fmt.Errorf("no answer on /healthz within %s", startTimeout)
		case <-tick.C:
		}
		resp, err := c.Get(s.publicURL() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
}

// WaitReady polls /readyz until it answers 200 (the broker connected).
func (s *service) WaitReady() {
	s.t.Helper()
	deadline := time.After(startTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	c := &http.Client{Timeout: 3 * time.Second}
	defer c.CloseIdleConnections()
	for {
		resp, err := c.Get(s.publicURL() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-deadline:
			s.t.Fatalf("/readyz not 200 within %s\nlog:\n%s", startTimeout, s.logs.Tail(40))
		case <-tick.C:
		}
	}
}

// Kill sends SIGKILL and waits for the process to be gone. It returns
// when kill(2) returned: from then on the process reads and writes
// nothing more (the kernel stops its threads at once), though the kernel
// may take a few milliseconds more to close its sockets.
func (s *service) Kill() time.Time {
	s.t.Helper()
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return time.Time{}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	at := time.Now()
	<-done
	fmt.Fprintf(s.logs, "=== killed (SIGKILL) at %s\n", at.UTC().Format(time.RFC3339Nano))
	return at
}

// Stop ends the process gracefully (SIGTERM), killing it if it hangs.
func (s *service) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		// The contract: a graceful shutdown on SIGTERM exits 0.
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			s.t.Errorf("verifier exited %d after SIGTERM, want 0", code)
		}
		fmt.Fprintf(s.logs, "=== stopped (SIGTERM)\n")
	case <-time.After(stopTimeout):
		s.t.Errorf("verifier did not stop within %s of SIGTERM; killing it", stopTimeout)
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart stops the process gracefully and starts it again.
func (s *service) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// Metric sums every series of a Prometheus metric whose labels contain
// all of want (e.g. `kind="verification"`), read from /metrics.
func (s *service) Metric(name string, want ...string) (float64, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get(s.publicURL() + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	found := false
lines:
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		for _, w := range want {
			if !strings.Contains(rest, w) {
				continue lines
			}
		}
		f := strings.Fields(rest)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum, found = sum+v, true
	}
	if !found {
		return 0, fmt.Errorf("metric %s%v not found", name, want)
	}
	return sum, nil
}

// freeAddr returns a loopback address with a port nobody listens on now.
// The service keeps it across restarts, as a real deployment keeps its
// address, so clients reconnect to the same place.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// sqliteURL is DATABASE_URL for a fresh SQLite file in dir.
func sqliteURL(dir string) string { return "sqlite:" + filepath.Join(dir, "verifier.db") }
