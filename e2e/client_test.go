//go:build faults

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

const (
	registerQ = `mutation($e:String!,$p:String!){register(input:{email:$e,password:$p}){watchToken status}}`
	verifyQ   = `mutation($t:String!){verifyEmail(token:$t){email status verifiedAt alreadyVerified}}`
	statusQ   = `query($w:String!){verificationStatus(watchToken:$w)}`
	watchQ    = `subscription($w:String!){verificationStatus(watchToken:$w){status at}}`
	password  = "correct horse battery staple"
)

// requestTimeout bounds one GraphQL request; a request that waits on a
// locked database may take the database's busy timeout (10 s) and more.
const requestTimeout = 30 * time.Second

// client speaks to the service only through its public surface: GraphQL
// over HTTP POST /query and graphql-transport-ws websockets.
type client struct {
	base string // http://host:port
	http *http.Client
}

func newClient(base string, conns int) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conns
	return &client{base: base, http: &http.Client{Timeout: requestTimeout, Transport: tr}}
}

func (c *client) close() { c.http.CloseIdleConnections() }

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

func (e gqlError) code() string {
	c, _ := e.Extensions["code"].(string)
	return c
}

// apiError is a GraphQL error answer (as opposed to no answer at all).
type apiError struct {
	Status int
	Code   string
	Msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Msg) }

// do posts one GraphQL operation and decodes data into out. A transport
// failure returns the transport's error; a GraphQL error an *apiError.
func (c *client) do(ctx context.Context, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/query", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var r struct {
		Data   json.RawMessage `json:"data"`
		Errors []gqlError      `json:"errors"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return &apiError{Status: resp.StatusCode, Code: "UNDECODABLE", Msg: truncate(string(raw), 200)}
	}
	if len(r.Errors) > 0 {
		return &apiError{Status: resp.StatusCode, Code: r.Errors[0].code(), Msg: r.Errors[0].Message}
	}
	if resp.StatusCode != http.StatusOK {
		return &apiError{Status: resp.StatusCode, Code: "HTTP", Msg: truncate(string(raw), 200)}
	}
	return json.Unmarshal(r.Data, out)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// register signs email up and returns its watchToken.
func (c *client) register(ctx context.Context, email string) (string, error) {
	var d struct {
		Register struct {
			WatchToken string `json:"watchToken"`
			Status     string `json:"status"`
		} `json:"register"`
	}
	if err := c.do(ctx, registerQ, map[string]any{"e": email, "p": password}, &d); err != nil {
		return "", err
	}
	if d.Register.WatchToken == "" || d.Register.Status != "UNVERIFIED" {
		return "", fmt.Errorf("register answered %+v", d.Register)
	}
	return d.Register.WatchToken, nil
}

// status reads the status behind a watchToken, as a reloaded waiting
// screen does.
func (c *client) status(ctx context.Context, watch string) error {
	var d struct {
		VerificationStatus string `json:"verificationStatus"`
	}
	return c.do(ctx, statusQ, map[string]any{"w": watch}, &d)
}

type verifyResult struct {
	Email           string    `json:"email"`
	Status          string    `json:"status"`
	VerifiedAt      time.Time `json:"verifiedAt"`
	AlreadyVerified bool      `json:"alreadyVerified"`
}

// verify confirms a token, as the button on the verify page does.
func (c *client) verify(ctx context.Context, token string) (verifyResult, error) {
	var d struct {
		VerifyEmail verifyResult `json:"verifyEmail"`
	}
	if err := c.do(ctx, verifyQ, map[string]any{"t": token}, &d); err != nil {
		return verifyResult{}, err
	}
	if d.VerifyEmail.Status != "VERIFIED" {
		return d.VerifyEmail, fmt.Errorf("verifyEmail answered status %q", d.VerifyEmail.Status)
	}
	return d.VerifyEmail, nil
}

// retryable reports whether a person (or a client library) would try the
// same call again: no answer, a 5xx, or INTERNAL. Anything about the
// input (INVALID_TOKEN, BAD_USER_INPUT) would not change on retry.
func retryable(err error) bool {
	var ae *apiError
	if !errors.As(err, &ae) {
		return true
	}
	return ae.Code == "INTERNAL" || ae.Status >= 500 || ae.Code == "HTTP" || ae.Code == "UNDECODABLE"
}

// watchEnd is how one subscription attempt ended.
type watchEnd int

const (
	watchVerified  watchEnd = iota // VERIFIED arrived
	watchDropped                   // the socket failed or closed: reconnect
	watchError                     // an error result (e.g. INTERNAL): re-subscribe
	watchCompleted                 // complete without VERIFIED: a standard client stops here
	watchInvalid                   // INVALID_TOKEN and the like: stop
)

// watchOnce opens one websocket, subscribes to watchToken and reads until
// VERIFIED, an error, completion or a dropped connection. onUnverified is
// called when the first UNVERIFIED event arrives.
func watchOnce(ctx context.Context, addr, watchToken string, onUnverified func()) (watchEnd, error) {
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.DialContext(ctx, "ws://"+addr+"/query", nil)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return watchDropped, err
	}
	resp.Body.Close()
	defer conn.Close()
	// Reads block; the deadline of the journey ends them.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	send := func(v any) error {
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		return conn.WriteJSON(v)
	}
	if err := send(map[string]any{"type": "connection_init", "payload": map[string]any{}}); err != nil {
		return watchDropped, err
	}
	subscribed := false
	for {
		var m struct {
			Type    string          `json:"type"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := conn.ReadJSON(&m); err != nil {
			return watchDropped, err
		}
		switch m.Type {
		case "connection_ack":
			if subscribed {
				continue
			}
			subscribed = true
			if err := send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": watchQ, "variables": map[string]any{"w": watchToken}}}); err != nil {
				return watchDropped, err
			}
		case "ping":
			if err := send(map[string]any{"type": "pong"}); err != nil {
				return watchDropped, err
			}
		case "pong", "ka":
		case "next":
			var p struct {
				Data struct {
					VerificationStatus struct {
						Status string `json:"status"`
					} `json:"verificationStatus"`
				} `json:"data"`
				Errors []gqlError `json:"errors"`
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil {
				return watchError, fmt.Errorf("undecodable next: %w", err)
			}
			if len(p.Errors) > 0 {
				if c := p.Errors[0].code(); c == "INTERNAL" || c == "" {
					return watchError, fmt.Errorf("subscription error %s: %s", c, p.Errors[0].Message)
				}
				return watchInvalid, fmt.Errorf("subscription error %s: %s", p.Errors[0].code(), p.Errors[0].Message)
			}
			switch st := p.Data.VerificationStatus.Status; st {
			case "VERIFIED":
				return watchVerified, nil
			case "UNVERIFIED":
				if onUnverified != nil {
					onUnverified()
				}
			default:
				return watchInvalid, fmt.Errorf("unexpected status %q", st)
			}
		case "error":
			return watchError, fmt.Errorf("subscription error message: %s", truncate(string(m.Payload), 200))
		case "complete":
			return watchCompleted, errors.New("complete without VERIFIED")
		default:
			return watchDropped, fmt.Errorf("unexpected message type %q", strings.TrimSpace(m.Type))
		}
	}
}
