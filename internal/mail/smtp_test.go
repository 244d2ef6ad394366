package mail

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"

	"github.com/verifier/verifier/internal/mail/mailtest"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

func quiet() *slog.Logger { return testkit.Discard() }

// newSMTP returns a sender for url on a clock the test moves.
func newSMTP(t *testing.T, url string) (*SMTP, *testkit.Clock) {
	t.Helper()
	s, err := NewSMTP(url, "Verifier <no-reply@verifier.test>", 2, quiet())
	require.NoError(t, err)
	t.Cleanup(s.Close)
	clock := testkit.NewFrozenClock(time.Now())
	s.now = clock.Now
	return s, clock
}

func testMessage(to string) Message {
	return Message{ID: "id-" + to, To: to, Subject: "Hello", Text: "text", HTML: "<p>html</p>"}
}

// The server accepted the message and then dropped the connection (so the
// RSET, NOOP or QUIT after it fails): the message is sent, once, and the
// next one goes out on a fresh connection.
func TestSMTPAcceptedMeansSent(t *testing.T) {
	t.Parallel()
	forBothExchanges(t, "", func(t *testing.T, sink *mailtest.Sink) {
		sink.DropAfterData(true)
		s, _ := newSMTP(t, sink.URL())
		require.NoError(t, s.Send(context.Background(), testMessage("a@example.com")))
		require.NoError(t, s.Send(context.Background(), testMessage("b@example.com")))
		got := sink.Collect(t, 2, 10*time.Second)
		require.Equal(t, []string{"a@example.com"}, got[0].To)
		require.Equal(t, []string{"b@example.com"}, got[1].To)
		require.Empty(t, sink.Pending(), "nothing sent twice")
		require.Equal(t, 2, sink.Sessions())
	})
}

// A pooled connection the server closed (a restart, an idle timeout) is
// replaced for the same send: no error reaches the caller, so it costs the
// message no attempt. Both ways of finding out are covered: the NOOP check
// of a connection idle a while, and a failed MAIL FROM on one just used.
func TestSMTPReplacesDeadPooledConnections(t *testing.T) {
	t.Parallel()
	for _, idle := range []time.Duration{0, 2 * checkIdleAfter} {
		forBothExchanges(t, idle.String(), func(t *testing.T, sink *mailtest.Sink) {
			s, clock := newSMTP(t, sink.URL())
			require.NoError(t, s.Send(context.Background(), testMessage("a@example.com")))
			sink.DropConnections()
			clock.Advance(idle)
			require.NoError(t, s.Send(context.Background(), testMessage("b@example.com")))
			sink.Collect(t, 2, 10*time.Second)
			require.Empty(t, sink.Pending())
			require.Equal(t, 2, sink.Sessions())
		})
	}
}

// Connections are reused: a handshake per email would dominate the time to
// inbox. A refused recipient does not cost the session either.
func TestSMTPReusesConnections(t *testing.T) {
	t.Parallel()
	forBothExchanges(t, "", func(t *testing.T, sink *mailtest.Sink) {
		sink.Refuse(func(to string) error {
			if strings.HasPrefix(to, "gone") {
				return mailtest.PermFail
			}
			return nil
		})
		s, _ := newSMTP(t, sink.URL())
		for range 3 {
			require.NoError(t, s.Send(context.Background(), testMessage("a@example.com")))
			require.Error(t, s.Send(context.Background(), testMessage("gone@example.com")))
		}
		sink.Collect(t, 3, 10*time.Second)
		require.Equal(t, 1, sink.Sessions())
	})
}

func TestSMTPClassifiesFailures(t *testing.T) {
	t.Parallel()
	closedPort := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		return "smtp://" + addr
	}
	reply := func(code int, enhanced smtp.EnhancedCode, msg string) error {
		return &smtp.SMTPError{Code: code, EnhancedCode: enhanced, Message: msg}
	}
	tests := []struct {
		name   string
		setup  func(t *testing.T, sink *mailtest.Sink) (url string)
		to     string
		class  Class
		reason string
	}{
		{"550 at RCPT", func(t *testing.T, sink *mailtest.Sink) string {
			sink.Refuse(func(string) error { return mailtest.PermFail })
			return sink.URL()
		}, "gone@example.com", Rejected, "refused the recipient: 550 5.1.1 no such user"},
		{"451 at RCPT", func(t *testing.T, sink *mailtest.Sink) string {
			sink.Refuse(func(string) error { return mailtest.TempFail })
			return sink.URL()
		}, "slow@example.com", Temporary, "deferred the message: 451 4.3.0 try again later"},
		{"relay denied at RCPT", func(t *testing.T, sink *mailtest.Sink) string {
			sink.Refuse(func(to string) error { return reply(554, smtp.EnhancedCode{5, 7, 1}, "<"+to+">: Relay access denied") })
			return sink.URL()
		}, "far@example.com", Misconfigured, "does not relay for us: 554 5.7.1 <<recipient>>: Relay access denied"},
		{"530 at MAIL FROM", func(t *testing.T, sink *mailtest.Sink) string {
			sink.RefuseMail(func(string) error { return mailtest.AuthRequired })
			return sink.URL()
		}, "a@example.com", Misconfigured, "refused our authentication: 530 5.7.0 Authentication required"},
		{"553 at MAIL FROM", func(t *testing.T, sink *mailtest.Sink) string {
			sink.RefuseMail(func(string) error { return reply(553, smtp.EnhancedCode{5, 1, 8}, "sender domain does not exist") })
			return sink.URL()
		}, "a@example.com", Misconfigured, "refused our sender address: 553 5.1.8"},
		{"550 naming the mailbox after the data", func(t *testing.T, sink *mailtest.Sink) string {
			sink.RefuseData(func(to []string) error { return reply(550, smtp.EnhancedCode{5, 1, 1}, to[0]+": mailbox unavailable") })
			return sink.URL()
		}, "late@example.com", Rejected, "refused the recipient: 550 5.1.1 <recipient>: mailbox unavailable"},
		{"550 naming the mailbox as the server rewrote it", func(t *testing.T, sink *mailtest.Sink) string {
			sink.Refuse(func(string) error {
				return reply(550, smtp.EnhancedCode{5, 1, 1}, "<rewritten.gone@mx.example.com>: no such user; ask postmaster@mx.example.com")
			})
			return sink.URL()
		}, "gone@example.com", Rejected, "refused the recipient: 550 5.1.1 <<address>>: no such user; ask <address>"},
		{"554 for the content after the data", func(t *testing.T, sink *mailtest.Sink) string {
			sink.RefuseData(func([]string) error { return reply(554, smtp.EnhancedCode{5, 7, 1}, "message rejected as spam") })
			return sink.URL()
		}, "a@example.com", Misconfigured, "refused the message: 554 5.7.1 message rejected as spam"},
		{"421 greeting", func(t *testing.T, sink *mailtest.Sink) string {
			sink.Greet(mailtest.ServiceUnavailable)
			return sink.URL()
		}, "a@example.com", Unreachable, "not taking mail now: 421 4.3.2 <server> Service not available"},
		{"hang-up before the greeting", func(t *testing.T, sink *mailtest.Sink) string {
			sink.Greet(mailtest.Hangup)
			return sink.URL()
		}, "a@example.com", Unreachable, "could not be reached"},
		{"connection refused", func(t *testing.T, _ *mailtest.Sink) string { return closedPort(t) },
			"a@example.com", Unreachable, "could not be reached"},
		{"wrong password", func(t *testing.T, sink *mailtest.Sink) string {
			sink.RequireAuth("verifier", "right")
			return "smtp://verifier:wrong@" + sink.Addr()
		}, "a@example.com", Misconfigured, "refused our authentication: 535 5.7.8"},
		{"credentials missing", func(t *testing.T, sink *mailtest.Sink) string {
			sink.RequireAuth("verifier", "right")
			return sink.URL()
		}, "a@example.com", Misconfigured, "530 5.7.0 Authentication required"},
		{"credentials given but no AUTH offered", func(t *testing.T, sink *mailtest.Sink) string {
			return "smtp://verifier:right@" + sink.Addr()
		}, "a@example.com", Misconfigured, "does not offer what our settings require"},
		{"only PLAIN offered, without TLS", func(t *testing.T, sink *mailtest.Sink) string {
			sink.RequireAuth("verifier", "right")
			sink.OfferAuth("PLAIN", "LOGIN")
			return "smtp://verifier:right@" + sink.Addr()
		}, "a@example.com", Misconfigured, "PLAIN and LOGIN only over TLS"},
		{"not an address", func(t *testing.T, sink *mailtest.Sink) string { return sink.URL() },
			"not an address", Rejected, "not a valid email address"},
	}
	for _, tt := range tests {
		forBothExchanges(t, tt.name, func(t *testing.T, sink *mailtest.Sink) {
			s, _ := newSMTP(t, tt.setup(t, sink))
			err := s.Send(context.Background(), testMessage(tt.to))
			require.Error(t, err)
			require.Equal(t, tt.class, ClassOf(err), "%v", err)
			require.Contains(t, ReasonOf(err), tt.reason)
			require.NotContains(t, ReasonOf(err), "127.0.0.1", "no host names in a reason")
			if tt.class != Rejected || tt.reason != "not a valid email address" {
				require.NotContains(t, ReasonOf(err), tt.to, "no recipient in a reason")
			}
			require.False(t, NotTried(err))
			require.Empty(t, sink.Pending())
		})
	}
}

// forBothExchanges runs f as a parallel subtest twice, on a sink that
// offers PIPELINING and on one that does not: the two exchanges must not
// differ in anything but their round trips.
func forBothExchanges(t *testing.T, name string, f func(t *testing.T, sink *mailtest.Sink)) {
	t.Helper()
	for _, pipelining := range []bool{true, false} {
		t.Run(fmt.Sprintf("%s/pipelining=%v", name, pipelining), func(t *testing.T) {
			t.Parallel()
			sink := mailtest.Start(t)
			if !pipelining {
				sink.NoPipelining()
			}
			f(t, sink)
		})
	}
}

// A server that offers PIPELINING gets MAIL FROM, RCPT TO and DATA in one
// write (two round trips a message, not four); one that does not gets them
// one at a time. Either way every message arrives once, on one session.
func TestSMTPPipelinesWhenOffered(t *testing.T) {
	t.Parallel()
	for _, pipelining := range []bool{true, false} {
		t.Run(fmt.Sprintf("pipelining=%v", pipelining), func(t *testing.T) {
			t.Parallel()
			sink := mailtest.Start(t)
			want := 3
			if !pipelining {
				sink.NoPipelining()
				want = 0
			}
			s, _ := newSMTP(t, sink.URL())
			for i := range 3 {
				require.NoError(t, s.Send(context.Background(), testMessage(fmt.Sprintf("p%d@example.com", i))))
			}
			got := sink.Collect(t, 3, 10*time.Second)
			for i, m := range got {
				require.Equal(t, []string{fmt.Sprintf("p%d@example.com", i)}, m.To)
				require.Equal(t, "no-reply@verifier.test", m.From)
			}
			require.Equal(t, want, sink.Pipelined())
			require.Equal(t, 1, sink.Sessions())
		})
	}
}

// A down server is dialed once a second, however much mail waits: the
// sends between fail at once, marked as not tried. The first probe that
// gets through opens the way again.
func TestSMTPHoldsBackWhileUnreachable(t *testing.T) {
	t.Parallel()
	sink := mailtest.Start(t)
	sink.Greet(mailtest.ServiceUnavailable)
	s, clock := newSMTP(t, sink.URL())
	ctx := context.Background()

	err := s.Send(ctx, testMessage("a@example.com"))
	require.Equal(t, Unreachable, ClassOf(err))
	require.False(t, NotTried(err))
	for range 5 {
		err = s.Send(ctx, testMessage("a@example.com"))
		require.Equal(t, Unreachable, ClassOf(err))
		require.True(t, NotTried(err), "held back without dialing")
		require.Contains(t, ReasonOf(err), "421")
	}

	sink.Greet(nil)
	require.True(t, NotTried(s.Send(ctx, testMessage("a@example.com"))), "until the next probe is due")
	clock.Advance(probeEvery)
	require.NoError(t, s.Send(ctx, testMessage("a@example.com")))
	require.NoError(t, s.Send(ctx, testMessage("b@example.com")), "the way is open for all")
	sink.Collect(t, 2, 10*time.Second)
}

// A send whose context ends stops: the broker has handed the message to
// someone else.
// conns bounds the sessions in use, whatever the number of callers: the
// mailer handles more emails at once than it opens connections. A caller
// beyond the bound waits for a session, and gives up untried when its
// context ends first.
func TestSMTPBoundsSessions(t *testing.T) {
	t.Parallel()
	sink := mailtest.Start(t)
	var mu sync.Mutex
	inside, most := 0, 0
	full, release := testkit.NewSignal(), make(chan struct{})
	// Released on return too: were the test to fail first, the held
	// senders would hold up the cleanups of the client and the sink.
	releaseAll := sync.OnceFunc(func() { close(release) })
	defer releaseAll()
	sink.RefuseMail(func(string) error {
		mu.Lock()
		inside++
		most = max(most, inside)
		if inside == 2 {
			full.Fire()
		}
		mu.Unlock()
		<-release
		mu.Lock()
		inside--
		mu.Unlock()
		return nil
	})
	s, _ := newSMTP(t, sink.URL()) // 2 connections
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		wg.Go(func() { errs <- s.Send(context.Background(), testMessage(fmt.Sprintf("u%d@example.com", i))) })
	}
	testkit.Receive(t, full.C(), "two senders at MAIL FROM")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Send(ctx, testMessage("late@example.com"))
	require.True(t, NotTried(err), "both sessions busy: nothing tried, got %v", err)
	require.Equal(t, Temporary, ClassOf(err))

	releaseAll()
	testkit.Wait(t, &wg, "end of 6 sends once the server lets them through")
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	sink.Collect(t, 6, 10*time.Second)
	require.Equal(t, 2, most, "at most 2 sessions in a transaction at once")
	require.Equal(t, 2, sink.Sessions(), "the waiting sends reused the 2 sessions")
}

func TestSMTPStopsWithItsContext(t *testing.T) {
	t.Parallel()
	sink := mailtest.Start(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	sink.RefuseData(func([]string) error {
		close(entered)
		<-release
		return nil
	})
	s, _ := newSMTP(t, sink.URL())
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-entered; cancel() }()
	err := s.Send(ctx, testMessage("a@example.com"))
	require.Equal(t, Temporary, ClassOf(err))
	require.Contains(t, ReasonOf(err), "stopped")
}

// A server that accepts the connection and never greets: go-mail waits
// dialTimeout (15 s) for the greeting whatever the context says, which held
// a stopping service that long beyond SHUTDOWN_GRACE. Send returns with its
// context's error instead of the greeting's timeout.
func TestSMTPStopsWhileTheServerNeverGreets(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		select {
		case c := <-accepted: // closing it ends the abandoned dial
			_ = c.Close()
		default:
		}
	})
	s, _ := newSMTP(t, "smtp://"+ln.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		c := <-accepted
		accepted <- c // for the cleanup
		cancel()
	}()
	err = s.Send(ctx, testMessage("a@example.com"))
	require.ErrorIs(t, err, context.Canceled, "the context's end, not the greeting's timeout")
	require.Equal(t, Temporary, ClassOf(err))
	require.Contains(t, ReasonOf(err), "stopped")
}

// The Message-ID names the sender's domain (MAIL_FROM's), as a mail
// server's own would: one that names no domain of the sender's reads to
// spam filters as bulk software. The id part stays the message's, the
// same on every attempt. Auto-Submitted says a program wrote it, so no
// out-of-office reply goes back to no-reply@.
func TestSMTPHeaders(t *testing.T) {
	t.Parallel()
	sink := mailtest.Start(t)
	s, _ := newSMTP(t, sink.URL())
	m := testMessage("a@example.com")
	m.ID = "0f8fad5b-d9cb-469f-a165-70867728950e" // an event id
	require.NoError(t, s.Send(context.Background(), m))
	got := sink.Collect(t, 1, 10*time.Second)
	require.Equal(t, "<0f8fad5b-d9cb-469f-a165-70867728950e@verifier.test>", got[0].MessageID)
	require.Equal(t, "auto-generated", got[0].AutoSubmitted, "RFC 3834: no out-of-office reply to it")
}

// scripted is an SMTP server that offers PIPELINING and answers RCPT TO
// with rcpt, and DATA with 354 whatever came before (as a server that
// does not check for recipients would): what go-smtp never does. It
// records the lines it read; rcpt of 421 closes the connection after it.
func scripted(t *testing.T, rcpt string) (url string, lines func() []string) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	addr := testkit.Serve(t, func(c net.Conn) {
		serveScript(c, rcpt, func(l string) { mu.Lock(); got = append(got, l); mu.Unlock() })
	})
	return "smtp://" + addr, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

func serveScript(c net.Conn, rcpt string, record func(string)) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	reply := func(s string) { _, _ = io.WriteString(c, s+"\r\n") }
	reply("220 scripted ESMTP")
	inData := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		record(line)
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch {
		case inData && line == ".":
			inData = false
			reply("554 5.5.1 no valid recipients")
		case inData:
		case verb == "EHLO":
			reply("250-scripted\r\n250-PIPELINING\r\n250 8BITMIME")
		case verb == "MAIL", verb == "RSET", verb == "NOOP":
			reply("250 2.0.0 ok")
		case verb == "RCPT":
			reply(rcpt)
			if strings.HasPrefix(rcpt, "421") {
				return
			}
		case verb == "DATA":
			inData = true
			reply("354 go ahead")
		case verb == "QUIT":
			reply("221 bye")
			return
		default:
			reply("500 5.5.2 what")
		}
	}
}

// A refused recipient in a pipelined exchange: if the server still takes
// the DATA, the empty message RFC 2920 asks for ends it, no body goes,
// and the session stays in step (RSET, then the next message on the same
// connection). A 421 to RCPT TO ends the session: the server is not taking
// mail now.
func TestSMTPPipelinedRefusals(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		rcpt     string
		class    Class
		sessions int // connections the two sends open
	}{
		{"550 at RCPT, DATA taken anyway", "550 5.1.1 no such user", Rejected, 1},
		{"421 at RCPT", "421 4.3.2 shutting down", Unreachable, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url, lines := scripted(t, tt.rcpt)
			s, _ := newSMTP(t, url)
			for range 2 {
				err := s.Send(context.Background(), testMessage("gone@example.com"))
				require.Error(t, err)
				require.Equal(t, tt.class, ClassOf(err), "%v", err)
				require.NotContains(t, ReasonOf(err), "gone@example.com")
				s.mu.Lock()
				s.down, s.probeAt = nil, time.Time{} // the second send dials at once
				s.mu.Unlock()
			}
			got := lines()
			require.Equal(t, tt.sessions, countOf(got, func(l string) bool { return strings.HasPrefix(l, "EHLO") }), "sessions: %q", got)
			require.NotContains(t, strings.Join(got, "\n"), "Subject:", "no body went: %q", got)
			if tt.class == Rejected {
				require.Equal(t, 2, countOf(got, func(l string) bool { return l == "." }), "an empty message ended each DATA: %q", got)
				require.Equal(t, 2, countOf(got, func(l string) bool { return l == "RSET" }), "the session kept in step: %q", got)
			}
		})
	}
}

func countOf(lines []string, f func(string) bool) int {
	n := 0
	for _, l := range lines {
		if f(l) {
			n++
		}
	}
	return n
}
