package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/gorilla/websocket"
)

const (
	registerQ = `mutation($e:String!,$p:String!){register(input:{email:$e,password:$p}){watchToken status}}`
	verifyQ   = `mutation($t:String!){verifyEmail(token:$t){status alreadyVerified}}`
	resendQ   = `mutation($e:String!){resendVerificationEmail(email:$e)}`
	watchQ    = `subscription($w:String!){verificationStatus(watchToken:$w){status at}}`
)

type gqlResult struct {
	Data   map[string]json.RawMessage `json:"data"`
	Errors []struct {
		Message string `json:"message"`
	} `json:"errors"`
}

// gql posts one operation and fails on any GraphQL error.
func (s *service) gql(query string, vars map[string]any) (map[string]json.RawMessage, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	resp, err := s.http.Post("http://"+s.addr+"/query", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r gqlResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, raw)
	}
	if len(r.Errors) > 0 {
		return nil, fmt.Errorf("graphql: %s", r.Errors[0].Message)
	}
	return r.Data, nil
}

func (s *service) register(email string) (watch string, err error) {
	d, err := s.gql(registerQ, map[string]any{"e": email, "p": "correct horse battery"})
	if err != nil {
		return "", err
	}
	var p struct{ WatchToken string }
	err = json.Unmarshal(d["register"], &p)
	return p.WatchToken, err
}

// watcher is one graphql-transport-ws subscription on its own websocket,
// as the "check your inbox" screen holds it.
type watcher struct {
	c *websocket.Conn
	// first is closed at the first event (UNVERIFIED).
	first chan struct{}
	// verified receives the arrival time of VERIFIED.
	verified chan time.Time
}

func (s *service) watch(watchToken string) (*watcher, error) {
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 30 * time.Second, ReadBufferSize: 512, WriteBufferSize: 512}
	c, resp, err := d.Dial("ws://"+s.addr+"/query", nil)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	w := &watcher{c: c, first: make(chan struct{}), verified: make(chan time.Time, 1)}
	if err := c.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{}}); err != nil {
		c.Close()
		return nil, err
	}
	var ack struct{ Type string }
	if err := c.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		c.Close()
		return nil, fmt.Errorf("no connection_ack: %v %q", err, ack.Type)
	}
	err = c.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": watchQ, "variables": map[string]any{"w": watchToken}}})
	if err != nil {
		c.Close()
		return nil, err
	}
	go w.read()
	return w, nil
}

func (w *watcher) read() {
	firstSeen := false
	for {
		var m struct {
			Type    string `json:"type"`
			Payload struct {
				Data struct {
					VerificationStatus struct{ Status string } `json:"verificationStatus"`
				} `json:"data"`
			} `json:"payload"`
		}
		if err := w.c.ReadJSON(&m); err != nil {
			return
		}
		at := time.Now()
		switch m.Type {
		case "ping":
			_ = w.c.WriteJSON(map[string]any{"type": "pong"})
			continue
		case "next":
		default:
			continue
		}
		if !firstSeen {
			firstSeen = true
			close(w.first)
		}
		if m.Payload.Data.VerificationStatus.Status == "VERIFIED" {
			w.verified <- at
		}
	}
}

func (w *watcher) close() { _ = w.c.Close() }
