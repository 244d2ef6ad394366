// Package webhooktest is a webhook receiver for tests, like httptest: a
// real HTTP server that records what it was sent and answers as told, and
// a check of the signatures with the Standard Webhooks reference library
// in Node (tools/eventcheck), independent of the service's Go code.
package webhooktest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
)

// Request is one request a Receiver got.
type Request struct {
	Header http.Header
	Body   []byte
}

// Receiver is a webhook endpoint. Answer decides each answer (default
// 200); it may block, e.g. until the test ends.
type Receiver struct {
	URL string
	// Got receives every request, in order.
	Got chan Request
}

// Start returns a receiver whose answer to the n-th request (1-based) is
// answer(n, request); nil answers 200. It closes when t ends.
func Start(t testing.TB, answer func(n int, r *http.Request) int) *Receiver {
	t.Helper()
	rc := &Receiver{Got: make(chan Request, 1000)}
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		k := int(n.Add(1))
		rc.Got <- Request{Header: r.Header.Clone(), Body: body}
		code := http.StatusOK
		if answer != nil {
			code = answer(k, r)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	rc.URL = srv.URL + "/hook"
	return rc
}

// eventcheck is the Node project beside the repository's root.
func eventcheck() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "tools", "eventcheck")
}

// VerifyWithNode checks every request's signature with the standardwebhooks
// npm package under secret, failing t if one does not verify. Without Node
// or the package installed (cd tools/eventcheck && npm ci) it fails under
// CI and skips the check elsewhere, saying so.
func VerifyWithNode(t testing.TB, secret string, reqs []Request) {
	t.Helper()
	dir := eventcheck()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks"))
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("webhooktest: node and tools/eventcheck/node_modules required under CI (cd tools/eventcheck && npm ci): %v", err)
		}
		t.Logf("webhooktest: independent signature check skipped (no node or no 'npm ci' in tools/eventcheck): %v", err)
		return
	}
	type req struct {
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}
	in := struct {
		Secret   string `json:"secret"`
		Requests []req  `json:"requests"`
	}{Secret: secret}
	for _, r := range reqs {
		h := map[string]string{}
		for _, k := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
			h[k] = r.Header.Get(k)
		}
		in.Requests = append(in.Requests, req{Headers: h, Body: string(r.Body)})
	}
	input, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "verify-webhook.mjs")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(input)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("webhooktest: standardwebhooks (Node) rejects the signature: %v\n%s", err, out)
	}
}
