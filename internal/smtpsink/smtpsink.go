// Package smtpsink is a real SMTP server for tests (github.com/emersion/go-smtp)
// that keeps what it receives and can be told to refuse mail.
package smtpsink

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Mail is one received message, decoded.
type Mail struct {
	From    string
	To      []string
	Subject string
	Text    string
	HTML    string
}

// Sink is a running SMTP server.
type Sink struct {
	addr     string
	received chan Mail
	sessions atomic.Int32

	mu     sync.Mutex
	refuse func(to string) error
}

// Start runs a sink on a loopback port until the test ends.
func Start(t testing.TB) *Sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtpsink: listen: %v", err)
	}
	s := &Sink{addr: ln.Addr().String(), received: make(chan Mail, 10000)}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		s.sessions.Add(1)
		return &session{sink: s}, nil
	}))
	srv.Domain = "sink.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.AllowInsecureAuth = true
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return s
}

// URL is the sink's SMTP_URL.
func (s *Sink) URL() string { return "smtp://" + s.addr }

// Sessions counts SMTP connections opened so far.
func (s *Sink) Sessions() int { return int(s.sessions.Load()) }

// Refuse makes the sink answer RCPT with f's error (nil accepts). Use
// TempFail and PermFail for realistic replies; Refuse(nil) accepts all.
func (s *Sink) Refuse(f func(to string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = f
}

// TempFail is a 451 reply: try again later.
var TempFail error = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}

// PermFail is a 550 reply: no such mailbox.
var PermFail error = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}

// Next waits for the next message, failing the test after timeout.
func (s *Sink) Next(t testing.TB, timeout time.Duration) Mail {
	t.Helper()
	select {
	case m := <-s.received:
		return m
	case <-time.After(timeout):
		t.Fatalf("smtpsink: no mail within %s", timeout)
		return Mail{}
	}
}

// Collect waits for n messages in all, failing the test after timeout.
func (s *Sink) Collect(t testing.TB, n int, timeout time.Duration) []Mail {
	t.Helper()
	deadline := time.After(timeout)
	out := make([]Mail, 0, n)
	for len(out) < n {
		select {
		case m := <-s.received:
			out = append(out, m)
		case <-deadline:
			t.Fatalf("smtpsink: %d of %d mails within %s", len(out), n, timeout)
		}
	}
	return out
}

// Pending returns the messages received and not yet taken, without waiting.
func (s *Sink) Pending() []Mail {
	var out []Mail
	for {
		select {
		case m := <-s.received:
			out = append(out, m)
		default:
			return out
		}
	}
}

type session struct {
	sink *Sink
	from string
	to   []string
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }
func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.sink.mu.Lock()
	refuse := ss.sink.refuse
	ss.sink.mu.Unlock()
	if refuse != nil {
		if err := refuse(to); err != nil {
			return err
		}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := parse(raw)
	if err != nil {
		return &smtp.SMTPError{Code: 554, Message: "sink could not parse message: " + err.Error()}
	}
	m.From, m.To = ss.from, ss.to
	ss.sink.received <- m
	return nil
}

func parse(raw []byte) (Mail, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Mail{}, err
	}
	var m Mail
	dec := new(mime.WordDecoder)
	if m.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return Mail{}, err
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return Mail{}, err
	}
	if !strings.HasPrefix(mediaType, "multipart/") {
		body, err := decode(msg.Body, msg.Header.Get("Content-Transfer-Encoding"))
		m.Text = body
		return m, err
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return m, nil
		}
		if err != nil {
			return Mail{}, err
		}
		// multipart decodes quoted-printable itself and drops the header.
		body, err := decode(p, p.Header.Get("Content-Transfer-Encoding"))
		if err != nil {
			return Mail{}, err
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch ct {
		case "text/plain":
			m.Text = body
		case "text/html":
			m.HTML = body
		}
	}
}

func decode(r io.Reader, encoding string) (string, error) {
	switch strings.ToLower(encoding) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r)
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	return strings.ReplaceAll(string(b), "\r\n", "\n"), err
}
