package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/verifier/verifier/internal/gqlws"
	"github.com/verifier/verifier/internal/startstop"
)

// Timeouts of the HTTP server. Every request of the contract is small and
// quick; these bound what a slow or hostile client can hold.
const (
	// readHeaderTimeout: a client gets this long to send its headers
	// (slowloris).
	readHeaderTimeout = 10 * time.Second
	// readTimeout and writeTimeout bound one request's body and answer; a
	// websocket is hijacked before either applies to it.
	readTimeout  = 30 * time.Second
	writeTimeout = 30 * time.Second
	// idleTimeout closes keep-alive connections nobody uses, above the
	// usual 60s of proxies and browsers so they close first.
	idleTimeout = 2 * time.Minute
)

// Server is the service's HTTP edge: it owns the listener, the
// http.Server and every open websocket, and has the lifecycle of every
// long-lived part. Stop closes the websockets with 1012 "service
// restart" and ends the event streams without "complete" (standard
// clients reconnect and subscribe again), then lets requests in flight
// finish within the grace.
type Server struct {
	startstop.Base

	addr    string
	grace   time.Duration
	log     *slog.Logger
	sockets *gqlws.Conns
	srv     *http.Server
	// shutting is done when Stop begins (closeOnShutdown, endStreams).
	shutting context.Context
	shut     context.CancelFunc

	mu    sync.Mutex
	bound string
}

var _ startstop.Service = (*Server)(nil)

// ServerOptions configure a Server.
type ServerOptions struct {
	// Addr is the listen address, HTTP_ADDR.
	Addr string
	// Grace bounds Stop: websockets closed and requests in flight
	// finished, or cut.
	Grace time.Duration
	// Sockets is the set of websockets the GraphQL handler accepts into
	// (WebsocketPolicy.Implementation), closed first at Stop.
	Sockets *gqlws.Conns
	Log     *slog.Logger
}

// NewServer returns a server for o's routes (New), not yet listening.
func NewServer(so ServerOptions, o Options) *Server {
	shutting, shut := context.WithCancel(context.Background())
	o.shutting = shutting
	return newServer(so, shutting, shut, New(o))
}

// NewOpsServer returns a server of metrics and health only (NewOps), for
// METRICS_ADDR, not yet listening.
func NewOpsServer(so ServerOptions, o Options) *Server {
	shutting, shut := context.WithCancel(context.Background())
	return newServer(so, shutting, shut, NewOps(o))
}

// NewProfilerServer returns a server of Go's profiler alone
// (net/http/pprof under /debug/pprof/), for PPROF_ADDR, not yet
// listening. A CPU profile or trace answers after the seconds it is asked
// for, so this server has no write timeout.
func NewProfilerServer(so ServerOptions) *Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	shutting, shut := context.WithCancel(context.Background())
	s := newServer(so, shutting, shut, mux)
	s.srv.WriteTimeout = 0
	return s
}

func newServer(so ServerOptions, shutting context.Context, shut context.CancelFunc, h http.Handler) *Server {
	s := &Server{addr: so.Addr, grace: so.Grace, log: so.Log, sockets: so.Sockets, shutting: shutting, shut: shut}
	if s.sockets == nil {
		s.sockets = gqlws.NewConns()
	}
	s.srv = &http.Server{
		// Websockets leave net/http's goroutine at the hijack (gqlws
		// serves each on a goroutine of its own).
		Handler:           closeOnShutdown(s.shutting.Done())(h),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(so.Log.Handler(), slog.LevelWarn),
	}
	return s
}

// Start listens, and serves in the background until Stop. A failure to
// serve ends the server by itself (Stopped, Err).
func (s *Server) Start(ctx context.Context) error {
	ctx, run, err := s.StartInit(ctx)
	if run == nil {
		return err
	}
	ln, err := net.Listen("tcp", s.addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		// What to do, before the system's words, which repeat the address.
		return run.Fail(fmt.Errorf("listen on %s: another process already listens there: stop it, or give this setting another port (%w)", s.addr, err))
	}
	if err != nil {
		return run.Fail(fmt.Errorf("listen on %s: %w", s.addr, err))
	}
	s.mu.Lock()
	s.bound = ln.Addr().String()
	s.mu.Unlock()
	served := make(chan error, 1)
	go func() { served <- s.srv.Serve(ln) }()
	go func() {
		select {
		case err := <-served:
			run.Stopped(fmt.Errorf("http server: %w", err))
			return
		case <-ctx.Done():
		}
		defer run.Stopped(nil)
		s.shutdown()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("http server ended with an error", "err", err)
		}
	}()
	run.Started()
	return nil
}

// Addr is the address the server listens on, once started.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bound
}

// shutdown ends the event streams and closes the websockets, then the
// server, within the grace.
func (s *Server) shutdown() {
	s.shut() // event streams end now, without "complete" (endStreams)
	ctx, cancel := context.WithTimeout(context.Background(), s.grace)
	defer cancel()
	// Websockets first, with 1012 "service restart", which standard
	// clients (graphql-ws, Apollo, urql) answer by reconnecting and
	// subscribing again. Only then may subscriptions end (the hub stops
	// after this server): after its close frame nothing more reaches a
	// client, so none gets "complete" for a watch that is still
	// UNVERIFIED.
	s.sockets.CloseAll(ctx, websocket.CloseServiceRestart, "service restart")
	if err := s.srv.Shutdown(ctx); err != nil {
		s.log.Warn("requests still running at the end of the grace period", "err", err)
	}
}
