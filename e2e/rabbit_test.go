//go:build faults

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The suite's own RabbitMQ node. The shared one on 5672 serves the unit
// tests of everyone on the machine and must never be stopped; this one the
// suite stops and starts at will. Erlang's epmd is shared, which is fine.
const (
	rabbitNode     = "verifier-faults@localhost"
	rabbitPort     = "5673"
	rabbitDistPort = "25673"
)

// rabbitNodeState is the dedicated node, started at most once per run by
// the first scenario that needs it and stopped by TestMain.
var rabbitNodeState struct {
	once    sync.Once
	started bool
	base    string
	err     error
}

// ciScript is .ci/rabbitmq, which knows how to install and start a node.
func ciScript() string { return filepath.Join(repoRoot, ".ci", "rabbitmq") }

func rabbitEnv(base string) []string {
	return append(os.Environ(),
		"RABBITMQ_NODENAME="+rabbitNode,
		"RABBITMQ_NODE_PORT="+rabbitPort,
		"RABBITMQ_DIST_PORT="+rabbitDistPort,
		"RABBITMQ_BASE="+base,
	)
}

// dedicatedRabbit starts the suite's node if needed and returns a fresh
// vhost's AMQP URL, so no scenario sees another's queues, whatever queues
// the service declares. Under CI a node that cannot start fails the test:
// a RabbitMQ scenario never passes without RabbitMQ.
func dedicatedRabbit(t *testing.T) string {
	t.Helper()
	st := &rabbitNodeState
	st.once.Do(func() {
		base, err := os.MkdirTemp("", "faults-rabbit-")
		if err != nil {
			st.err = err
			return
		}
		st.base = base
		cmd := exec.Command(ciScript(), "start")
		cmd.Env = rabbitEnv(base)
		out, err := cmd.CombinedOutput()
		if err != nil {
			st.err = fmt.Errorf("%s start: %v\n%s", ciScript(), err, out)
			return
		}
		st.started = true
	})
	if st.err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("RabbitMQ node %s required under CI but did not start: %v", rabbitNode, st.err)
		}
		t.Skipf("RabbitMQ node %s did not start (%v); run under 'make faults' as root, or install rabbitmq-server", rabbitNode, st.err)
	}
	vhost := fmt.Sprintf("faults-%s-%d", strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()), time.Now().UnixNano())
	rabbitctl(t, "add_vhost", vhost)
	rabbitctl(t, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
	t.Cleanup(func() { rabbitctl(t, "delete_vhost", vhost) })
	return "amqp://guest:guest@127.0.0.1:" + rabbitPort + "/" + vhost
}

// rabbitctl runs rabbitmqctl against the suite's node and returns what it
// printed.
func rabbitctl(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command("rabbitmqctl", append([]string{"-q", "-n", rabbitNode}, args...)...)
	cmd.Env = rabbitEnv(rabbitNodeState.base)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// stopDedicatedRabbit stops the node if this run started it.
func stopDedicatedRabbit() {
	st := &rabbitNodeState
	if st.base == "" {
		return
	}
	if st.started {
		cmd := exec.Command(ciScript(), "stop")
		cmd.Env = rabbitEnv(st.base)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping RabbitMQ node %s: %v\n%s", rabbitNode, err, out)
		}
	}
	_ = os.RemoveAll(st.base)
}
