package main

import (
	"bytes"
	"errors"
	"io"
	"mime/quotedprintable"
	"net"
	"regexp"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// sink is the SMTP server the service sends to: it accepts everything,
// notes when each recipient's message was accepted and the token in it,
// and can hold senders at MAIL FROM (a backlog builds in the outbox) until
// released.
type sink struct {
	srv *smtp.Server
	ln  net.Listener

	mu       sync.Mutex
	gate     chan struct{} // nil: open
	accepted map[string][]delivered
	total    int
	changed  chan struct{} // closed and replaced on every delivery
}

type delivered struct {
	at time.Time
	// raw is the message as accepted (only the latest for its address
	// keeps it): token finds the link in it when asked.
	raw []byte
}

// token is the verification token in the message's link. It is looked for
// between phases, not as the message arrives: the sink shares the CPUs
// with the service, and decoding every message took a third of the
// sink's CPU while a backlog drained (make bench -profile).
func (d delivered) token() string {
	// The link sits in quoted-printable parts; decoding the whole message
	// is enough to find it.
	decoded, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(d.raw)))
	if m := tokenRe.FindSubmatch(decoded); m != nil {
		return string(m[1])
	}
	return ""
}

func startSink() (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{ln: ln, accepted: map[string][]delivered{}, changed: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{sink: s}, nil }))
	s.srv.Domain = "bench.test"
	s.srv.ReadTimeout, s.srv.WriteTimeout = time.Minute, time.Minute
	s.srv.MaxRecipients = 10
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *sink) url() string { return "smtp://" + s.ln.Addr().String() }

func (s *sink) close() { _ = s.srv.Close() }

// hold makes every new message wait at MAIL FROM until release.
func (s *sink) hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate == nil {
		s.gate = make(chan struct{})
	}
}

func (s *sink) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
}

// waitTotal waits until n messages were accepted in all, or timeout.
func (s *sink) waitTotal(n int, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		total, ch := s.total, s.changed
		s.mu.Unlock()
		if total >= n {
			return nil
		}
		select {
		case <-ch:
		case <-deadline:
			return errors.New("sink: timed out waiting for mail")
		}
	}
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// last is the latest message accepted for addr.
func (s *sink) last(addr string) (delivered, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.accepted[addr]
	if len(d) == 0 {
		return delivered{}, false
	}
	return d[len(d)-1], true
}

// first is the first message accepted for addr.
func (s *sink) first(addr string) (delivered, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.accepted[addr]
	if len(d) == 0 {
		return delivered{}, false
	}
	return d[0], true
}

type session struct {
	sink *sink
	to   []string
}

func (s *session) AuthPlain(string, string) error { return nil }

func (s *session) Mail(string, *smtp.MailOptions) error {
	s.sink.mu.Lock()
	gate := s.sink.gate
	s.sink.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

var tokenRe = regexp.MustCompile(`/verify-email\?token=([A-Za-z0-9_-]+)`)

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	at := time.Now()
	s.sink.mu.Lock()
	defer s.sink.mu.Unlock()
	for _, to := range s.to {
		earlier := s.sink.accepted[to]
		if len(earlier) > 0 {
			earlier[len(earlier)-1].raw = nil
		}
		s.sink.accepted[to] = append(earlier, delivered{at: at, raw: raw})
		s.sink.total++
	}
	close(s.sink.changed)
	s.sink.changed = make(chan struct{})
	return nil
}

func (s *session) Reset()        { s.to = nil }
func (s *session) Logout() error { return nil }
