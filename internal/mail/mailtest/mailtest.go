// Package mailtest is a real SMTP server for tests (github.com/emersion/go-smtp)
// that keeps what it receives and can be told to misbehave the ways real
// servers do: refuse recipients, senders or messages, refuse connections,
// require authentication, drop connections at chosen moments.
package mailtest

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
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

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mail is one received message, decoded.
type Mail struct {
	From    string
	To      []string
	Subject string
	Text    string
	HTML    string
	// MessageID is the Message-ID header.
	MessageID string
	// AutoSubmitted is the Auto-Submitted header (RFC 3834).
	AutoSubmitted string
}

// Sink is a running SMTP server.
type Sink struct {
	addr     string
	received chan Mail
	sessions atomic.Int32

	mu            sync.Mutex
	refuse        func(to string) error
	refuseMail    func(from string) error
	refuseData    func(to []string) error
	greeting      error
	dropAfterData bool
	user, pass    string
	offered       []string // AUTH mechanisms advertised instead of CRAM-MD5
	rcpts         map[string]int
	conns         map[*conn]bool
	noPipelining  bool
	pipelined     atomic.Int32
}

// Start runs a sink on a loopback port until the test ends.
func Start(t testing.TB) *Sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailtest: listen: %v", err)
	}
	s := &Sink{addr: ln.Addr().String(), received: make(chan Mail, 10000), rcpts: map[string]int{}, conns: map[*conn]bool{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.sessions.Add(1)
		tc, _ := c.Conn().(*conn)
		return &session{sink: s, conn: tc}, nil
	}))
	srv.Domain = "sink.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.AllowInsecureAuth = true
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(&listener{Listener: ln, sink: s}) }()
	// Closing ln too: Serve may not have registered it with srv yet.
	t.Cleanup(func() { _ = srv.Close(); _ = ln.Close(); <-done })
	return s
}

// URL is the sink's SMTP_URL.
func (s *Sink) URL() string { return "smtp://" + s.addr }

// Addr is the sink's host:port.
func (s *Sink) Addr() string { return s.addr }

// Sessions counts SMTP sessions opened so far (refused connections are not
// sessions).
func (s *Sink) Sessions() int { return int(s.sessions.Load()) }

// NoPipelining makes the sink leave PIPELINING (RFC 2920) out of its EHLO
// reply, as a few old servers do; it is offered by default.
func (s *Sink) NoPipelining() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noPipelining = true
}

// Pipelined counts the messages whose MAIL FROM arrived in one read with
// the RCPT TO and DATA after it: sent without waiting for the replies.
func (s *Sink) Pipelined() int { return int(s.pipelined.Load()) }

// Refuse makes the sink answer RCPT with f's error (nil accepts). Use
// TempFail and PermFail for realistic replies; Refuse(nil) accepts all.
func (s *Sink) Refuse(f func(to string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = f
}

// RefuseMail makes the sink answer MAIL FROM with f's error (nil accepts),
// e.g. AuthRequired.
func (s *Sink) RefuseMail(f func(from string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuseMail = f
}

// RefuseData makes the sink answer the end of the data with f's error (nil
// accepts), as servers that check content or mailboxes late do.
func (s *Sink) RefuseData(f func(to []string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuseData = f
}

// Greet sets how new connections are met: nil serves them; an
// *smtp.SMTPError (e.g. ServiceUnavailable) is sent as the greeting and the
// connection closed; Hangup closes it without a word.
func (s *Sink) Greet(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.greeting = err
}

// Hangup, given to Greet, closes new connections before the greeting.
var Hangup = errors.New("mailtest: hang up")

// DropAfterData makes the sink accept each message and then close the
// connection, so that whatever the client sends next (RSET, NOOP, the next
// MAIL, QUIT) fails.
func (s *Sink) DropAfterData(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropAfterData = on
}

// DropConnections closes every open connection, as a restarting server (or
// one that times idle clients out) does.
func (s *Sink) DropConnections() {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// RequireAuth makes the sink offer AUTH CRAM-MD5 (the mechanism clients use
// without TLS) and answer MAIL FROM with AuthRequired until a session
// authenticated as user with pass; wrong credentials get
// 535. Empty user turns it off.
func (s *Sink) RequireAuth(user, pass string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user, s.pass = user, pass
}

// OfferAuth makes the sink advertise mechs in AUTH instead of CRAM-MD5
// (with RequireAuth), e.g. PLAIN, which a client must not use without TLS.
func (s *Sink) OfferAuth(mechs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offered = mechs
}

// Attempts counts the RCPT commands for to so far, refused ones included.
func (s *Sink) Attempts(to string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcpts[to]
}

// TempFail is a 451 reply: try again later.
var TempFail error = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}

// PermFail is a 550 reply: no such mailbox.
var PermFail error = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}

// AuthRequired is a 530 reply: authenticate first.
var AuthRequired error = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}

// ServiceUnavailable is a 421 reply: not now, closing.
var ServiceUnavailable error = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "sink.test Service not available, closing transmission channel"}

// Next waits for the next message, failing the test after timeout.
func (s *Sink) Next(t testing.TB, timeout time.Duration) Mail {
	t.Helper()
	select {
	case m := <-s.received:
		return m
	case <-time.After(timeout):
		t.Fatalf("mailtest: no mail within %s", timeout)
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
			t.Fatalf("mailtest: %d of %d mails within %s", len(out), n, timeout)
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

// listener turns connections away as Greet says and tracks the others.
type listener struct {
	net.Listener
	sink *Sink
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.sink.mu.Lock()
		greeting := l.sink.greeting
		l.sink.mu.Unlock()
		var se *smtp.SMTPError
		if errors.As(greeting, &se) {
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = fmt.Fprintf(c, "%d %d.%d.%d %s\r\n", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
		}
		if greeting != nil {
			_ = c.Close()
			continue
		}
		tc := &conn{Conn: c, sink: l.sink}
		l.sink.mu.Lock()
		l.sink.conns[tc] = true
		l.sink.mu.Unlock()
		return tc, nil
	}
}

// conn can close itself right after its next reply, hide PIPELINING, and
// keeps the last bytes it read.
type conn struct {
	net.Conn
	sink           *Sink
	dropAfterWrite atomic.Bool
	lastRead       []byte // the server's goroutine only
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.lastRead = append(c.lastRead[:0], p[:n]...)
	return n, err
}

// pipelining is the EHLO reply's line that offers PIPELINING.
var pipelining = []byte("250-PIPELINING\r\n")

func (c *conn) Write(p []byte) (int, error) {
	c.sink.mu.Lock()
	hide := c.sink.noPipelining
	c.sink.mu.Unlock()
	if hide && bytes.Contains(p, pipelining) {
		// go-smtp flushes the whole EHLO reply in one write.
		if _, err := c.Conn.Write(bytes.Replace(p, pipelining, nil, 1)); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	n, err := c.Conn.Write(p)
	if c.dropAfterWrite.Swap(false) {
		_ = c.Close()
	}
	return n, err
}

func (c *conn) Close() error {
	c.sink.mu.Lock()
	delete(c.sink.conns, c)
	c.sink.mu.Unlock()
	return c.Conn.Close()
}

type session struct {
	sink   *Sink
	conn   *conn
	authed bool
	from   string
	to     []string
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

func (ss *session) AuthMechanisms() []string {
	ss.sink.mu.Lock()
	defer ss.sink.mu.Unlock()
	if ss.sink.user == "" {
		return nil
	}
	if ss.sink.offered != nil {
		return ss.sink.offered
	}
	return []string{"CRAM-MD5"}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	ss.sink.mu.Lock()
	user, pass := ss.sink.user, ss.sink.pass
	ss.sink.mu.Unlock()
	if mech != "CRAM-MD5" || user == "" {
		return nil, &smtp.SMTPError{Code: 504, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "mechanism not supported"}
	}
	return &cramMD5{user: user, pass: pass, ok: func() { ss.authed = true }}, nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.sink.mu.Lock()
	refuse, needAuth := ss.sink.refuseMail, ss.sink.user != ""
	ss.sink.mu.Unlock()
	if needAuth && !ss.authed {
		return AuthRequired
	}
	if refuse != nil {
		if err := refuse(from); err != nil {
			return err
		}
	}
	ss.from = from
	// go-smtp reads what arrived (one write of the client's, on loopback)
	// before it handles the first line of it.
	if ss.conn != nil && bytes.Contains(ss.conn.lastRead, []byte("\r\nDATA\r\n")) {
		ss.sink.pipelined.Add(1)
	}
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.sink.mu.Lock()
	refuse := ss.sink.refuse
	ss.sink.rcpts[to]++
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
	ss.sink.mu.Lock()
	refuse, drop := ss.sink.refuseData, ss.sink.dropAfterData
	ss.sink.mu.Unlock()
	if refuse != nil {
		if err := refuse(ss.to); err != nil {
			return err
		}
	}
	m, err := Parse(raw)
	if err != nil {
		return &smtp.SMTPError{Code: 554, Message: "sink could not parse message: " + err.Error()}
	}
	m.From, m.To = ss.from, ss.to
	ss.sink.received <- m
	if drop && ss.conn != nil {
		ss.conn.dropAfterWrite.Store(true)
	}
	return nil
}

// cramMD5 is the server side of RFC 2195.
type cramMD5 struct {
	user, pass string
	ok         func()
	challenge  []byte
}

func (c *cramMD5) Next(response []byte) ([]byte, bool, error) {
	if c.challenge == nil {
		c.challenge = fmt.Appendf(nil, "<%d@sink.test>", time.Now().UnixNano())
		return c.challenge, false, nil
	}
	mac := hmac.New(md5.New, []byte(c.pass))
	mac.Write(c.challenge)
	want := c.user + " " + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), response) {
		return nil, false, &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
	}
	c.ok()
	return nil, true, nil
}

// Parse decodes the headers and the text and HTML bodies of a raw message,
// as a mail client would show them: base64 and quoted-printable undone, CRLF
// made LF, nested multiparts walked. Servers of other tests that need their
// own fault behaviour (the fault suite's) decode with it too.
func Parse(raw []byte) (Mail, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Mail{}, err
	}
	m := Mail{MessageID: msg.Header.Get("Message-Id"), AutoSubmitted: msg.Header.Get("Auto-Submitted")}
	dec := new(mime.WordDecoder)
	if m.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return Mail{}, err
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return Mail{}, err
	}
	if !strings.HasPrefix(mediaType, "multipart/") {
		m.Text, err = decode(msg.Body, msg.Header.Get("Content-Transfer-Encoding"))
		return m, err
	}
	if err := m.walk(multipart.NewReader(msg.Body, params["boundary"])); err != nil {
		return Mail{}, err
	}
	return m, nil
}

// walk keeps the first text/plain and text/html parts of mr and of the
// multiparts nested in it.
func (m *Mail) walk(mr *multipart.Reader) error {
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		ct, params, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		var body *string
		switch {
		case strings.HasPrefix(ct, "multipart/"):
			if err := m.walk(multipart.NewReader(p, params["boundary"])); err != nil {
				return err
			}
			continue
		case ct == "text/plain" && m.Text == "":
			body = &m.Text
		case ct == "text/html" && m.HTML == "":
			body = &m.HTML
		default:
			continue
		}
		// multipart decodes quoted-printable itself and drops the header.
		if *body, err = decode(p, p.Header.Get("Content-Transfer-Encoding")); err != nil {
			return err
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
