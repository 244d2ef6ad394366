package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// backend is one way to run the service: its database and broker.
type backend struct {
	name     string
	amqpURL  string
	postgres string // base URL; each run gets a fresh database on it
}

// service is the verifier binary running as a child process.
type service struct {
	cmd     *exec.Cmd
	addr    string
	http    *http.Client
	drop    func()
	stopped sync.Once
}

// startService runs bin against a fresh database and the sink, and
// returns once it listens.
func startService(ctx context.Context, bin, dir string, be backend, sk *sink, extraEnv ...string) (*service, error) {
	dbURL := "sqlite:" + filepath.Join(dir, fmt.Sprintf("bench-%d.db", time.Now().UnixNano()))
	drop := func() {}
	if be.postgres != "" {
		var err error
		if dbURL, drop, err = freshPostgres(ctx, be.postgres); err != nil {
			return nil, err
		}
	}
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(),
		"HTTP_ADDR=127.0.0.1:0",
		"DATABASE_URL="+dbURL,
		"AMQP_URL="+be.amqpURL,
		"SMTP_URL="+sk.url(),
		"PUBLIC_URL=http://verifier.bench",
		"RESEND_COOLDOWN=1s",
		// The bench is one client doing the work of thousands.
		"CLIENT_RATE_LIMIT=0",
		"VERIFY_RATE_LIMIT=0",
		"DOMAIN_EMAIL_LIMIT=0",
		"GLOBAL_EMAIL_LIMIT=0",
		"WS_MAX_SOCKETS=100000",
		"LOG_FORMAT=json",
		"LOG_LEVEL=info",
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		drop()
		return nil, err
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Start(); err != nil {
		drop()
		return nil, err
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			// Most lines are the access log's, one per request: looked
			// at, not decoded (decoding them was a sixth of this
			// process's CPU in the register phase, which shares the
			// CPUs with the service).
			if bytes.Contains(sc.Bytes(), []byte(`"level":"INFO"`)) && !bytes.Contains(sc.Bytes(), []byte(`"msg":"verifier is listening"`)) {
				continue
			}
			var l struct {
				Msg   string `json:"msg"`
				Addr  string `json:"addr"`
				Level string `json:"level"`
			}
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "verifier is listening" {
				addr <- l.Addr
				continue
			}
			if l.Level == "ERROR" || l.Level == "WARN" {
				fmt.Fprintf(os.Stderr, "  service: %s\n", sc.Bytes())
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	s := &service{cmd: cmd, http: &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 128}}, drop: drop}
	select {
	case s.addr = <-addr:
		return s, nil
	case <-time.After(60 * time.Second):
		s.stop()
		return nil, errors.New("the service did not start within 60s")
	}
}

// cpuProfile starts a CPU profile of d on the service's profiler at addr
// (PPROF_ADDR) and returns what waits for it and writes it to path.
func (s *service) cpuProfile(ctx context.Context, addr string, d time.Duration, path string) func() error {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	done := make(chan error, 1)
	go func() {
		done <- s.saveProfile(ctx, addr, fmt.Sprintf("profile?seconds=%d", secs), path)
	}()
	// Let the profile begin before the phase does.
	time.Sleep(50 * time.Millisecond)
	return func() error { return <-done }
}

// selfProfile starts a CPU profile of this process and returns what stops
// it and writes it to path.
func selfProfile(path string) func() error {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		return func() error { return err }
	}
	return func() error {
		pprof.StopCPUProfile()
		return os.WriteFile(path, buf.Bytes(), 0o644)
	}
}

// freePort returns a loopback address with a port free right now.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// stop ends the service gracefully (SIGTERM) and drops its database.
func (s *service) stop() {
	s.stopped.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		_ = s.cmd.Wait()
		s.http.CloseIdleConnections()
		s.drop()
	})
}

// metrics reads the gauges the service publishes on /metrics.
func (s *service) metrics(names ...string) (map[string]float64, error) {
	resp, err := s.http.Get("http://" + s.addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		for _, n := range names {
			if f[0] == n {
				v, err := strconv.ParseFloat(f[1], 64)
				if err == nil {
					out[n] = v
				}
			}
		}
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("metrics: no %s", n)
		}
	}
	return out, sc.Err()
}

// freshPostgres creates an empty database on the server of base and
// returns its URL and a function dropping it.
func freshPostgres(ctx context.Context, base string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("postgres: %w", err)
	}
	name := fmt.Sprintf("verifier_bench_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		conn.Close(ctx)
		return "", nil, fmt.Errorf("postgres: create database: %w", err)
	}
	cfg := conn.Config()
	url := fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Password, cfg.Host, cfg.Port, name)
	drop := func() {
		_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		conn.Close(context.Background())
	}
	return url, drop, nil
}

// waitOutboxEmpty waits until the service's outbox holds no event
// (verifier_outbox_backlog on /metrics).
func (s *service) waitOutboxEmpty(timeout time.Duration) error {
	const backlog = "verifier_outbox_backlog"
	deadline := time.Now().Add(timeout)
	for {
		m, err := s.metrics(backlog)
		if err != nil {
			return err
		}
		if m[backlog] == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the outbox still holds %v events after %s", m[backlog], timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitRSSSettled waits until the service's resident memory stops moving:
// after its last password hash, the heap's room for hashes is given back
// (heaproom) and the runtime returns that memory to the
// kernel over the next seconds. A baseline read before then would credit
// the idle subscriptions with memory freed meanwhile.
func (s *service) waitRSSSettled(timeout time.Duration) error {
	const rss, steady, every = "process_resident_memory_bytes", 8, 500 * time.Millisecond
	const within = 1 << 20
	deadline := time.Now().Add(timeout)
	// Past the room's linger (2 s), so that a collection with GOGC back
	// at its value has happened before the steady readings are counted.
	time.Sleep(3 * time.Second)
	var last []float64
	for {
		m, err := s.metrics(rss)
		if err != nil {
			return err
		}
		last = append(last, m[rss])
		if len(last) > steady {
			last = last[1:]
		}
		if len(last) == steady && slices.Max(last)-slices.Min(last) < within {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the service's RSS still moves after %s: %v", timeout, last)
		}
		time.Sleep(every)
	}
}

// saveProfile writes the service's pprof profile name (heap, goroutine,
// profile?seconds=N…) to path.
func (s *service) saveProfile(ctx context.Context, addr, name, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/%s", addr, name), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s profile: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s profile: %s", name, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}
