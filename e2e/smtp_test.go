//go:build faults

package e2e

import (
	"errors"
	"io"
	"log"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/verifier/verifier/internal/mail/mailtest"
)

// smtpMode is how the fault SMTP server treats new work.
type smtpMode int

const (
	// smtpUp accepts mail (rules per address still apply).
	smtpUp smtpMode = iota
	// smtpRefuse closes the port: connections are refused, and open ones
	// are cut, as when the relay's process or host is down.
	smtpRefuse
	// smtpGreet421 answers every new connection "421 service not
	// available" and hangs up, as a relay does while overloaded or
	// shutting down.
	smtpGreet421
	// smtpRcpt451 answers every RCPT with 451 (greylisting, a full
	// queue), on new and open connections.
	smtpRcpt451
	// smtpMail530 answers MAIL FROM with 530 (authentication required):
	// a hiccup of the relay's own configuration, not of a recipient.
	smtpMail530
)

func (m smtpMode) String() string {
	return [...]string{"up", "refusing connections", "421 at greeting", "451 at RCPT", "530 at MAIL FROM"}[m]
}

// received is one verification email as the fault server decoded it.
type received struct {
	At        time.Time
	To        string
	MessageID string
	Subject   string
	Token     string // from the link line of the text part; "" if none
	// Unanswered is set when the sender was gone by the time this server
	// answered the final "." (it was killed while the server worked):
	// the server keeps the message, as a real relay does, but the sender
	// never heard "250". A copy sent again is the duplicate RFC 1047
	// describes, which no SMTP client can avoid; the suite counts it
	// apart. Set when the sender had closed its end (PeerGone), when the
	// "250" could not be written, or when the suite killed the sender's
	// process between the session's start and Answered (see
	// SenderKilled).
	Unanswered bool
	// Answered is when the write of the "250" to the sender returned
	// (zero: it failed): the earliest the sender could have read it.
	// Until then the sender cannot know, whatever it does; on a loaded
	// machine this server can take tens of milliseconds between At and
	// writing the reply.
	Answered time.Time
	// PeerGone is set when the sender's end of the connection was closed
	// as the server answered.
	PeerGone bool
	// session is when the connection that carried the message was
	// accepted: a kill after it and before Answered hit the message's
	// sender.
	session time.Time
}

// faultSMTP is a real SMTP server (emersion/go-smtp) whose behaviour a
// scenario switches: down, 421, 451, and per-address 550 or 451 forever.
// It records every RCPT attempt and every message it accepts.
type faultSMTP struct {
	t       testing.TB
	addr    string
	linkRE  *regexp.Regexp
	latency time.Duration // added before accepting DATA, like a real relay
	srv     *smtp.Server
	handoff *chanListener
	served  chan struct{}

	mu        sync.Mutex
	mode      smtpMode
	ln        net.Listener
	acceptEnd chan struct{}
	conns     map[net.Conn]struct{}
	perm550   map[string]bool // addresses answered 550 at RCPT
	temp451   map[string]bool // addresses answered 451 at RCPT forever
	attempts  map[string]int  // RCPT commands per address, whatever the reply
	mails     map[string][]received
	waiters   map[string]chan struct{} // closed at an address's first mail
	attempted map[string]chan struct{} // closed at an address's first RCPT
	last      time.Time                // arrival of the latest mail
	kills     []time.Time              // when the suite killed the sender (SenderKilled)
}

// startSMTP runs a fault SMTP server on a loopback port until the test
// ends. publicURL is the service's PUBLIC_URL, to find links in mails.
func startSMTP(t testing.TB, publicURL string, latency time.Duration) *faultSMTP {
	t.Helper()
	s := &faultSMTP{
		t:         t,
		linkRE:    regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(publicURL) + `/verify-email\?token=([A-Za-z0-9_%-]+)\r?$`),
		latency:   latency,
		handoff:   newChanListener(),
		served:    make(chan struct{}),
		conns:     map[net.Conn]struct{}{},
		perm550:   map[string]bool{},
		temp451:   map[string]bool{},
		attempts:  map[string]int{},
		mails:     map[string][]received{},
		waiters:   map[string]chan struct{}{},
		attempted: map[string]chan struct{}{},
	}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &faultSession{s: s, conn: c.Conn(), began: time.Now()}, nil
	}))
	s.srv.Domain = "faults.test"
	s.srv.ReadTimeout, s.srv.WriteTimeout = 30*time.Second, 30*time.Second
	s.srv.AllowInsecureAuth = true
	// Cut connections are the point of some scenarios; go-smtp would log
	// each one to stderr.
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	go func() { defer close(s.served); _ = s.srv.Serve(s.handoff) }()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fault smtp: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	s.mu.Lock()
	s.listen(ln)
	s.mu.Unlock()
	t.Cleanup(s.close)
	return s
}

// URL is the server's SMTP_URL.
func (s *faultSMTP) URL() string { return "smtp://" + s.addr }

// listen starts accepting on ln; s.mu is held.
func (s *faultSMTP) listen(ln net.Listener) {
	s.ln = ln
	end := make(chan struct{})
	s.acceptEnd = end
	go func() {
		defer close(end)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			mode := s.mode
			if mode != smtpGreet421 {
				s.conns[c] = struct{}{}
			}
			s.mu.Unlock()
			if mode == smtpGreet421 {
				go greet421(c)
				continue
			}
			s.handoff.give(&trackedConn{Conn: c, s: s})
		}
	}()
}

func greet421(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "421 4.3.2 faults.test Service not available, closing transmission channel\r\n")
	_ = c.Close()
}

// Set switches the server's mode. Refusing closes the port and cuts every
// open connection; leaving it listens again on the same port.
func (s *faultSMTP) Set(mode smtpMode) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == mode {
		return
	}
	was := s.mode
	s.mode = mode
	switch {
	case mode == smtpRefuse:
		_ = s.ln.Close()
		end := s.acceptEnd
		s.mu.Unlock()
		<-end
		s.mu.Lock()
		for c := range s.conns {
			_ = c.Close()
		}
	case was == smtpRefuse:
		// Go sets SO_REUSEADDR, so the port is free again at once.
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			s.t.Errorf("fault smtp: listen again on %s: %v", s.addr, err)
			return
		}
		s.listen(ln)
	}
}

// Refuse550 makes RCPT TO addr answer 550 (no such user), for good.
func (s *faultSMTP) Refuse550(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.perm550[strings.ToLower(addr)] = true
}

// Defer451 makes RCPT TO addr answer 451, for good.
func (s *faultSMTP) Defer451(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.temp451[strings.ToLower(addr)] = true
}

// Delivered is closed when addr's first mail arrives.
func (s *faultSMTP) Delivered(addr string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return chanFor(s.waiters, strings.ToLower(addr))
}

// Attempted is closed when the first RCPT TO addr arrives.
func (s *faultSMTP) Attempted(addr string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return chanFor(s.attempted, strings.ToLower(addr))
}

func chanFor(m map[string]chan struct{}, k string) chan struct{} {
	c, ok := m[k]
	if !ok {
		c = make(chan struct{})
		m[k] = c
	}
	return c
}

// SenderKilled tells the server that the sending process was killed at
// (just after kill(2) returned). A message whose "250" was not yet
// written by then was never answered for its sender, even when the
// kernel had not closed the sender's sockets yet when peerGone looked:
// measured, it takes the kernel up to several milliseconds after SIGKILL
// to close them, and such copies were counted as avoidable. A message
// answered before at counts as answered, even though its sender may have
// died before reading the "250": the count errs towards avoidable.
func (s *faultSMTP) SenderKilled(at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kills = append(s.kills, at)
}

// Mails returns the messages received for addr.
func (s *faultSMTP) Mails(addr string) []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settled(s.mails[strings.ToLower(addr)])
}

// AllMails returns every message received, by address.
func (s *faultSMTP) AllMails() map[string][]received {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]received, len(s.mails))
	for k, v := range s.mails {
		out[k] = s.settled(v)
	}
	return out
}

// settled copies ms, marking Unanswered the messages whose sender was
// killed before this server's "250" was written; s.mu is held.
func (s *faultSMTP) settled(ms []received) []received {
	out := append([]received(nil), ms...)
	for i, m := range out {
		if m.Answered.IsZero() {
			out[i].Unanswered = true
		}
		for _, k := range s.kills {
			if m.session.Before(k) && k.Before(m.Answered) {
				out[i].Unanswered = true
			}
		}
	}
	return out
}

// Attempts is how many RCPT commands named addr.
func (s *faultSMTP) Attempts(addr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[strings.ToLower(addr)]
}

func (s *faultSMTP) close() {
	s.mu.Lock()
	if s.mode != smtpRefuse {
		_ = s.ln.Close()
	}
	end := s.acceptEnd
	s.mu.Unlock()
	<-end
	_ = s.srv.Close()
	<-s.served
}

// rcpt decides the reply to RCPT TO addr and counts the attempt.
func (s *faultSMTP) rcpt(addr string) error {
	addr = strings.ToLower(addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[addr]++
	if c := chanFor(s.attempted, addr); s.attempts[addr] == 1 {
		close(c)
	}
	switch {
	case s.perm550[addr]:
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
	case s.temp451[addr], s.mode == smtpRcpt451:
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "temporary local problem, try again later"}
	}
	return nil
}

// deliver records a message and returns what stamps it with the time
// its "250" was written.
func (s *faultSMTP) deliver(to []string, raw []byte, session time.Time, peerGone bool) (func(time.Time), error) {
	m, err := mailtest.Parse(raw)
	if err != nil {
		return nil, err
	}
	got := received{MessageID: m.MessageID, Subject: m.Subject, Unanswered: peerGone, PeerGone: peerGone, session: session}
	if sm := s.linkRE.FindStringSubmatch(m.Text); sm != nil {
		got.Token = strings.ReplaceAll(sm[1], "%3D", "=")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	got.At = time.Now()
	s.last = got.At
	type at struct {
		addr string
		i    int
	}
	var stored []at
	for _, a := range to {
		a = strings.ToLower(a)
		r := got
		r.To = a
		s.mails[a] = append(s.mails[a], r)
		stored = append(stored, at{a, len(s.mails[a]) - 1})
		if len(s.mails[a]) == 1 {
			close(chanFor(s.waiters, a))
		}
	}
	return func(t time.Time) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, st := range stored {
			s.mails[st.addr][st.i].Answered = t
		}
	}, nil
}

type faultSession struct {
	s     *faultSMTP
	conn  net.Conn
	began time.Time // when the connection was accepted
	to    []string
}

// peerGone reports whether the sender has closed the connection (or was
// killed: the kernel closes its sockets). It reads straight from the
// socket for a millisecond: a live sender is silent while it waits for
// the answer to ".", so nothing of its is consumed.
func (ss *faultSession) peerGone() bool {
	if ss.conn == nil {
		return false
	}
	defer func() { _ = ss.conn.SetReadDeadline(time.Time{}) }()
	_ = ss.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := ss.conn.Read(b[:])
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func (ss *faultSession) Reset()        { ss.to = nil }
func (ss *faultSession) Logout() error { return nil }
func (ss *faultSession) Mail(string, *smtp.MailOptions) error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.s.mode == smtpMail530 {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}
	}
	return nil
}
func (ss *faultSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.s.rcpt(to); err != nil {
		return err
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *faultSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if ss.s.latency > 0 {
		time.Sleep(ss.s.latency) // a relay's own work before it answers 250
	}
	answered, err := ss.s.deliver(ss.to, raw, ss.began, ss.peerGone())
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "unparsable message"}
	}
	if tc, ok := ss.conn.(*trackedConn); ok {
		// go-smtp writes the "250" as soon as Data returns.
		tc.onWrite(answered)
	} else {
		// Not ours to watch (never, as listen hands out only tracked
		// ones): answered now, which errs towards counting duplicates.
		answered(time.Now())
	}
	return nil
}

// chanListener hands accepted connections to go-smtp's Serve, so the
// suite can close and reopen the real port while one smtp.Server lives.
type chanListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) give(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.closed:
		_ = c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// trackedConn forgets itself when closed, so refusing cuts only live ones,
// and tells when the reply to a message's "." was written.
type trackedConn struct {
	net.Conn
	s    *faultSMTP
	once sync.Once

	mu      sync.Mutex
	written func(time.Time) // called after the next write that succeeds
}

// onWrite makes the next successful write call f with its time.
func (c *trackedConn) onWrite(f func(time.Time)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.written = f
}

func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	f := c.written
	c.written = nil
	c.mu.Unlock()
	if f != nil && err == nil {
		f(time.Now())
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c.Conn)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}
