//go:build faults

// Package e2e is the fault suite: it builds the real verifier binary, drives
// it only through its public surface (GraphQL over HTTP and websockets,
// /readyz, /metrics) under a bounded load of sign-ups with open
// subscriptions, injects faults (SIGKILL, a RabbitMQ outage, SMTP outages
// and refusals, a locked or read-only database) and counts what was lost,
// duplicated or never pushed. RELIABILITY.md has the figures and how to
// run it: go test -tags faults -count=1 -v ./e2e/
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

var (
	// repoRoot is the module root (tests run in e2e/).
	repoRoot string
	// binaryPath is the verifier binary built once for the whole run.
	binaryPath string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoRoot = filepath.Dir(wd)
	dir, err := os.MkdirTemp("", "faults-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Readable by all: one scenario runs the binary as user nobody.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binaryPath = filepath.Join(dir, "verifier")
	build := exec.Command("go", "build", "-o", binaryPath, ".")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	defer stopDedicatedRabbit()

	code := m.Run()
	printTable(os.Stdout)
	if path := os.Getenv("FAULTS_REPORT"); path != "" {
		if f, err := os.Create(path); err == nil {
			printTable(f)
			_ = f.Close()
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			return 1
		}
	}
	return code
}

// row is one line of the fault table.
type row struct {
	Fault      string
	Tried      int // registrations the API accepted
	Delivered  int // of those, addresses that got their verification email
	Lost       int // accepted, never emailed by the deadline (meant-to-fail addresses aside)
	Duplicated int // extra copies (same Message-ID or same token)
	Missed     int // verifyEmail succeeded but the subscription never saw VERIFIED
	Drain      string
	Result     string // PASS or FAIL
	Notes      []string
}

var table struct {
	mu   sync.Mutex
	rows []row
}

func record(r row) {
	table.mu.Lock()
	defer table.mu.Unlock()
	table.rows = append(table.rows, r)
}

func (r row) markdown() string {
	return fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %s | %s | %s |",
		r.Fault, r.Tried, r.Delivered, r.Lost, r.Duplicated, r.Missed, r.Drain, r.Result, strings.Join(r.Notes, "; "))
}

const tableHeader = "| fault | tried | delivered | lost | duplicated | pushes missed | drain after recovery | result | notes |\n" +
	"|---|---:|---:|---:|---:|---:|---:|---|---|"

func printTable(w *os.File) {
	table.mu.Lock()
	defer table.mu.Unlock()
	if len(table.rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nFault table (tried = registrations accepted; drain = recovery to the last email):\n\n%s\n", tableHeader)
	for _, r := range table.rows {
		fmt.Fprintln(w, r.markdown())
	}
	fmt.Fprintln(w)
}
