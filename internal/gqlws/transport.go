// Package gqlws serves GraphQL subscriptions over websockets, on gqlgen's
// executor: the graphql-transport-ws subprotocol and the legacy graphql-ws
// (subscriptions-transport-ws), the latter also when a client asks for no
// subprotocol, with github.com/gorilla/websocket.
//
// It replaces gqlgen's transport.Websocket for what an idle subscription
// costs, since thousands stay open for minutes each. gqlgen's runs the read
// loop on net/http's handler goroutine (whose stack holds net/http's
// frames, every middleware and gqlgen's handler), keeps a goroutine per
// socket waiting for its context to end, and the request's headers for the
// socket's life. Here a socket is one goroutine started after the upgrade,
// with shallow frames while it waits for the next message; a subscription
// whose stream says when it sends (Ready) has no goroutine while it waits,
// one only while it answers, and any other has one for its life: stacks
// count twice in RSS, once as stack and once in the garbage collector's
// heap goal. Init timeout, pings and the end of the socket run from timers
// and from the read loop's own end, not from goroutines.
//
// The package is also the one place that knows every open websocket, so
// shutdown can close them all with one close code (Conns), and it keeps
// what must last as long as a socket, such as a place under a per-client
// cap (KeepWhileOpen).
package gqlws

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/verifier/verifier/internal/apperr"
)

// The subprotocols served, in the order of preference.
const (
	transportWS = "graphql-transport-ws"
	legacyWS    = "graphql-ws"
)

var subprotocols = []string{transportWS, legacyWS}

// Close codes of graphql-transport-ws (its PROTOCOL.md), used for the
// legacy protocol too, which defines none.
const (
	closeInvalidMessage  = 4400
	closeUnauthorized    = 4401
	closeInitTimeout     = 4408
	closeDuplicateID     = 4409
	closeTooManyInits    = 4429
	closeTerminated      = websocket.CloseNormalClosure
	reasonTerminated     = "terminated"
	reasonInvalidMessage = "Invalid message received"
	reasonNotUTF8        = "Message is not UTF-8 text"
)

// Transport is the websocket transport of a gqlgen handler.Server.
type Transport struct {
	// Upgrader upgrades the request; its Subprotocols are this package's.
	Upgrader websocket.Upgrader
	// Conns, when not nil, tracks every accepted connection.
	Conns *Conns
	// PingInterval, when not zero, pings every connection this often with
	// websocket ping frames and drops one that answers none within two
	// intervals.
	PingInterval time.Duration
	// InitTimeout closes a socket (4408) whose client has not sent
	// connection_init within it; 0 waits forever.
	InitTimeout time.Duration
	// ReadLimit bounds one message from a client (gorilla closes the
	// socket with 1009 beyond it); 0 is no bound.
	ReadLimit int64
	// OnInit, when not nil, returns the context of the socket's operations
	// once the client said connection_init: values that last as long as
	// the socket (a count of its subscriptions).
	OnInit func(context.Context) context.Context
	// Log receives what goes wrong on a socket, at debug level; never
	// anything the client sent.
	Log *slog.Logger
}

var _ graphql.Transport = Transport{}

// Supports takes the requests that ask for a websocket (Connection:
// upgrade and Upgrade: websocket), whatever their method, so that a
// handshake that is not a GET is refused here (refuseUpgrade) rather than
// run as a GraphQL request over POST. An upgrade to another protocol is
// left to the other transports: a server may ignore Upgrade (RFC 9110,
// 7.8), and curl --http2 sends "Upgrade: h2c" on every plain-HTTP
// request.
func (Transport) Supports(r *http.Request) bool { return websocket.IsWebSocketUpgrade(r) }

// errUnknownSubprotocol is why a handshake that offers subprotocols, none
// of them served here, is refused. It quotes none of them.
var errUnknownSubprotocol = errors.New("websocket: none of the subprotocols offered (Sec-WebSocket-Protocol) is served here: offer " + transportWS + ", or the legacy " + legacyWS)

// speaksOneOf reports whether a handshake's offer leaves this server a
// subprotocol to answer with: one it serves, or none offered (the legacy
// graphql-ws, as gqlgen serves it, for clients that name no protocol).
func speaksOneOf(offered []string) bool {
	if len(offered) == 0 {
		return true
	}
	for _, o := range offered {
		if slices.Contains(subprotocols, o) {
			return true
		}
	}
	return false
}

// refuseUpgrade answers a handshake gorilla refused as the edge answers
// every refusal: a GraphQL error with the contract's code. gorilla's
// reasons name the header at fault and quote nothing the client sent.
func refuseUpgrade(w http.ResponseWriter, _ *http.Request, status int, reason error) {
	code, msg := apperr.BadUserInput, strings.TrimPrefix(reason.Error(), "websocket: ")
	switch {
	case status == http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodGet)
		msg = "a websocket handshake must be a GET"
	case status >= http.StatusInternalServerError:
		// The connection could not be taken over: nothing the client
		// did, nor anything it should read about.
		code, msg = apperr.Internal, "unable to upgrade"
	}
	// SendError writes JSON but leaves the type to net/http's sniffing,
	// which calls it text/plain.
	w.Header().Set("Content-Type", "application/json")
	transport.SendError(w, status, &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": string(code)}})
}

// Do upgrades the request and returns, leaving the socket to a goroutine
// of its own (net/http's returns once the handler does). The socket's
// context keeps the request's values (client address, request id, trace)
// but not its cancellation, which comes when the handler returns; the
// socket's end cancels it.
func (t Transport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	up := t.Upgrader
	up.Subprotocols = subprotocols
	if up.Error == nil {
		up.Error = refuseUpgrade
	}
	if r.Method == http.MethodGet && !speaksOneOf(websocket.Subprotocols(r)) {
		// Served without a subprotocol, a client that asked for some
		// fails the handshake on its side (RFC 6455, 4.1) with no reason
		// given, or talks a protocol the server does not: say which.
		up.Error(w, r, http.StatusBadRequest, errUnknownSubprotocol)
		return
	}
	c, err := up.Upgrade(w, r, withRequestID(w))
	if err != nil {
		return
	}
	conn := &Conn{c: c, set: t.Conns}
	if t.ReadLimit > 0 {
		c.SetReadLimit(t.ReadLimit)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	s := &socket{
		conn:   conn,
		exec:   exec,
		legacy: c.Subprotocol() != transportWS,
		onInit: t.OnInit,
		log:    t.Log,
		ctx:    ctx,
		done:   ctx,
		cancel: cancel,
	}
	if l, ok := r.Context().Value(leaseKey{}).(*lease); ok && l.kept.CompareAndSwap(false, true) {
		s.release = l.release
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if t.PingInterval > 0 {
		conn.keepAlive(t.PingInterval, s.keepAlive)
	}
	if t.Conns != nil {
		t.Conns.add(conn)
	}
	if t.InitTimeout > 0 {
		s.initTimer = time.AfterFunc(t.InitTimeout, s.initTimedOut)
	}
	go s.run()
}

// withRequestID returns the headers of the upgrade's answer: the
// X-Request-Id a middleware set on w, since gorilla writes the 101 itself.
func withRequestID(w http.ResponseWriter) http.Header {
	id := w.Header().Get("X-Request-Id")
	if id == "" {
		return nil
	}
	return http.Header{"X-Request-Id": {id}}
}

// socket is one accepted websocket. Its read loop (run) is the only
// goroutine that reads, and the only one that touches ctx.
type socket struct {
	conn   *Conn
	exec   graphql.GraphExecutor
	legacy bool
	onInit func(context.Context) context.Context
	log    *slog.Logger
	// ctx is the context of the socket's operations (OnInit's, once the
	// client said hello); done is its ancestor that cancel ends, checked
	// by subscriptions to tell their own end from the socket's.
	ctx     context.Context
	done    context.Context
	cancel  context.CancelFunc
	release func()
	// initTimer closes a socket whose client never says hello.
	initTimer *time.Timer

	mu    sync.Mutex
	acked bool
	subs  map[string]*subscription
	// running counts the subscriptions' goroutines, which end waits for.
	running sync.WaitGroup
}

// subscription is one running operation of a socket.
type subscription struct {
	cancel context.CancelFunc

	// Set before the first call of responses; read by later pumps.
	responses graphql.ResponseHandler
	ctx       context.Context
	rc        *graphql.OperationContext

	mu sync.Mutex
	// pending counts the stream's notices not yet answered by a call of
	// responses; armed: the stream gives one before each value and
	// before its end (Ready), so the operation can wait with no goroutine
	// (parked: armed, not running, not over).
	pending int
	armed   bool
	running bool
	over    bool
}

// again is called after each response: whether to call responses again
// now. An unarmed operation waits in responses, on its goroutine; an armed
// one only while notices are pending, and otherwise parks.
func (sub *subscription) again() bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if !sub.armed {
		return true
	}
	sub.pending--
	if sub.pending > 0 {
		return true
	}
	sub.running = false
	return false
}

// readyKey holds an operation's *Ready in its context.
type readyKey struct{}

// Ready lets a subscription's stream spare the operation its goroutine
// while it waits. gqlgen reads a subscription's channel in a call that
// blocks until the next value, so every open subscription held a
// goroutine parked in that call: its stack and its state, half of what
// an idle subscription cost (make bench). A stream that says when it
// sends lets the operation call only then: between two values nothing
// runs.
type Ready struct {
	s   *socket
	id  string
	sub *subscription
}

// ReadyFrom returns the Ready of the operation ctx belongs to, or nil
// when it is not served by this transport (Notify and Arm do nothing
// then).
func ReadyFrom(ctx context.Context) *Ready {
	r, _ := ctx.Value(readyKey{}).(*Ready)
	return r
}

// Notify is called by the stream right before each value it sends and
// right before it closes: one call per event the operation will read.
func (r *Ready) Notify() {
	if r == nil {
		return
	}
	r.s.wake(r.id, r.sub)
}

// Arm is called by the resolver once its stream is set up and notifies
// every value and its end; before that, or without it, the operation
// waits for its values on a goroutine as gqlgen's transports do. Notices
// given before Arm count.
func (r *Ready) Arm() {
	if r == nil {
		return
	}
	r.sub.mu.Lock()
	r.sub.armed = true
	r.sub.mu.Unlock()
}

// clientMessage is one message from the client, in either protocol.
type clientMessage struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

// serverMessage is one message to the client.
type serverMessage struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// run reads until the socket ends. While it waits, its stack holds run,
// next and gorilla's read: what a message needs is decoded and dispatched
// in handle, which has returned by then.
func (s *socket) run() {
	defer s.end()
	for s.next() {
	}
}

// next reads and handles one message, and reports whether to go on.
func (s *socket) next() bool {
	_, r, err := s.conn.c.NextReader()
	if err != nil {
		s.readFailed(err)
		return false
	}
	return s.handle(r)
}

// readFailed notes why reading ended; never with the error's text, which
// can quote what the client sent (a close reason).
func (s *socket) readFailed(err error) {
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce), errors.Is(err, net.ErrClosed):
		// The client closed, or this side did.
	default:
		s.log.Debug("websocket read failed")
	}
}

// end cancels the socket's operations, closes the connection (after a
// close frame, unless one went out or came in already), waits for the
// subscriptions to finish and gives up what the socket kept.
func (s *socket) end() {
	if s.initTimer != nil {
		s.initTimer.Stop()
	}
	s.cancel()
	_ = s.conn.writeClose(closeTerminated, reasonTerminated, writeTimeout)
	_ = s.conn.Close()
	// Parked operations get a goroutine to end on (and count in running
	// before the wait). Only this goroutine, the read loop, adds
	// operations, so none starts meanwhile.
	s.mu.Lock()
	subs := maps.Clone(s.subs)
	s.mu.Unlock()
	for id, sub := range subs {
		s.wake(id, sub)
	}
	s.running.Wait()
	if s.release != nil {
		s.release()
	}
}

// initTimedOut closes a socket whose client has not said hello.
func (s *socket) initTimedOut() {
	s.mu.Lock()
	acked := s.acked
	s.mu.Unlock()
	if !acked {
		s.fail(closeInitTimeout, "Connection initialisation timeout")
	}
}

// keepAlive sends graphql-ws's keep-alive with each ping: its clients
// (subscriptions-transport-ws) close a socket that goes two of their
// timeouts (30 s by default) without one, and see no websocket pings.
func (s *socket) keepAlive() {
	s.mu.Lock()
	acked := s.acked
	s.mu.Unlock()
	if s.legacy && acked {
		s.send(serverMessage{Type: "ka"})
	}
}

// fail closes the socket over a protocol error: on graphql-ws after a
// connection_error, as gqlgen's did. The read loop then ends.
func (s *socket) fail(code int, reason string) bool {
	if s.legacy {
		payload, _ := json.Marshal(gqlerror.Error{Message: reason})
		s.send(serverMessage{Type: "connection_error", Payload: payload})
	}
	_ = s.conn.writeClose(code, reason, writeTimeout)
	_ = s.conn.Close()
	return false
}

// handle decodes and dispatches one message.
func (s *socket) handle(r io.Reader) bool {
	start := graphql.Now()
	// At most ReadLimit bytes (the service sets one): gorilla ends a
	// longer message.
	b, err := io.ReadAll(r)
	if err != nil {
		return s.fail(closeInvalidMessage, reasonInvalidMessage)
	}
	// Gorilla does not check that a message is UTF-8 (RFC 6455 asks the
	// endpoint to fail the connection with 1007), and encoding/json turns
	// bytes that are not into U+FFFD: an address or a password sent in a
	// subscribe message would be taken as something the client never sent,
	// which the HTTP transport refuses (checkBody).
	if !utf8.Valid(b) {
		return s.fail(websocket.CloseInvalidFramePayloadData, reasonNotUTF8)
	}
	var m clientMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return s.fail(closeInvalidMessage, reasonInvalidMessage)
	}
	// One JSON value, and nothing after it but white space: a message
	// with more is no JSON message either.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return s.fail(closeInvalidMessage, reasonInvalidMessage)
	}
	switch {
	case m.Type == "connection_init":
		return s.hello()
	case m.Type == "ping" && !s.legacy:
		s.send(serverMessage{Type: "pong", Payload: m.Payload})
	case m.Type == "pong" && !s.legacy:
		// An answer to nothing: pings are websocket frames.
	case m.Type == "subscribe" && !s.legacy, m.Type == "start" && s.legacy:
		if m.ID == "" {
			// Both protocols name every operation: without an id its
			// results could not be told apart, nor could it be stopped.
			return s.fail(closeInvalidMessage, reasonInvalidMessage)
		}
		return s.subscribe(m.ID, m.Payload, start)
	case m.Type == "complete" && !s.legacy, m.Type == "stop" && s.legacy:
		s.stop(m.ID)
	case m.Type == "connection_terminate" && s.legacy:
		_ = s.conn.writeClose(closeTerminated, reasonTerminated, writeTimeout)
		return false
	default:
		return s.fail(closeInvalidMessage, reasonInvalidMessage)
	}
	return true
}

// hello acknowledges connection_init; on graphql-ws with a first
// keep-alive, as gqlgen's did (keepAlive sends the others).
func (s *socket) hello() bool {
	s.mu.Lock()
	again := s.acked
	s.acked = true
	s.mu.Unlock()
	if again {
		return s.fail(closeTooManyInits, "Too many initialisation requests")
	}
	if s.initTimer != nil {
		s.initTimer.Stop()
	}
	if s.onInit != nil {
		s.ctx = s.onInit(s.ctx)
	}
	s.send(serverMessage{Type: "connection_ack"})
	if s.legacy {
		s.send(serverMessage{Type: "ka"})
	}
	return true
}

// subscribe starts operation id: it is checked and planned here, on the
// read loop, and runs on a goroutine of its own.
func (s *socket) subscribe(id string, payload json.RawMessage, start time.Time) bool {
	s.mu.Lock()
	acked, old := s.acked, s.subs[id]
	if old != nil && s.legacy {
		// graphql-ws lets a client reuse an id: the old operation ends
		// without a word, as subscriptions-transport-ws's server did.
		delete(s.subs, id)
	}
	s.mu.Unlock()
	switch {
	case !acked:
		return s.fail(closeUnauthorized, "Unauthorized")
	case old != nil && !s.legacy:
		return s.fail(closeDuplicateID, "Subscriber for this id already exists")
	case old != nil:
		old.cancel()
		// A parked one has no goroutine to see its context end.
		s.wake(id, old)
	}

	ctx := graphql.StartOperationTrace(s.ctx)
	params := &graphql.RawParams{}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(params); err != nil {
		bad := gqlerror.Wrap(err)
		bad.Message = "the subscribe message's payload is not a GraphQL request"
		// With its code, a presenter keeps this message rather than
		// calling it an error of no known kind.
		bad.Extensions = map[string]any{"code": string(apperr.BadUserInput)}
		s.sendErrors(id, s.exec.DispatchError(ctx, gqlerror.List{bad}).Errors)
		s.completeAfterError(id)
		return true
	}
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	rc, errs := s.exec.CreateOperationContext(ctx, params)
	if errs != nil {
		resp := s.exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		if errcode.GetErrorKind(errs) == errcode.KindProtocol {
			s.sendErrors(id, resp.Errors)
			s.completeAfterError(id)
		} else {
			s.sendResponse(id, resp)
			s.complete(id)
		}
		return true
	}

	ctx, cancel := context.WithCancel(graphql.WithOperationContext(ctx, rc))
	sub := &subscription{cancel: cancel, running: true}
	ctx = context.WithValue(ctx, readyKey{}, &Ready{s: s, id: id, sub: sub})
	s.mu.Lock()
	if s.subs == nil {
		s.subs = map[string]*subscription{}
	}
	s.subs[id] = sub
	s.mu.Unlock()
	s.running.Add(1)
	go s.serve(ctx, id, sub, rc)
	return true
}

// wake answers a notice of sub's stream, or the end of its context (stop,
// the socket's end: a call of responses then returns nil and the operation
// finishes): a parked operation gets a goroutine that calls responses,
// and a running one calls again. The stream notifies under its own lock,
// so this never waits for anything but sub's.
func (s *socket) wake(id string, sub *subscription) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	sub.pending++
	if !sub.armed || sub.running || sub.over {
		return
	}
	sub.running = true
	s.running.Add(1)
	go s.pump(id, sub)
}

// stop ends operation id at the client's request; its goroutine confirms
// with complete. An unknown id is ignored: the operation may have just
// ended by itself.
func (s *socket) stop(id string) {
	s.mu.Lock()
	sub := s.subs[id]
	s.mu.Unlock()
	if sub != nil {
		sub.cancel()
		// A parked operation has no goroutine to see its context end.
		s.wake(id, sub)
	}
}

// serve starts operation id and runs it until it ends or parks.
func (s *socket) serve(ctx context.Context, id string, sub *subscription, rc *graphql.OperationContext) {
	responses, ctx := s.exec.DispatchOperation(ctx, rc)
	sub.mu.Lock()
	sub.responses, sub.ctx, sub.rc = responses, ctx, rc
	sub.mu.Unlock()
	s.pump(id, sub)
}

// pump calls responses and sends what it returns until the stream ends, the
// operation is stopped, the socket ends, or (armed) no notice is pending.
func (s *socket) pump(id string, sub *subscription) {
	defer s.running.Done()
	for {
		r, ok := s.call(id, sub)
		if r == nil || !ok {
			// After a panic an error message went out in place of a result.
			s.finish(id, sub, !ok)
			return
		}
		s.sendResponse(id, r)
		if !sub.again() {
			return
		}
	}
}

// call is one call of the operation's responses; ok is false after a
// panic, turned into an error message.
func (s *socket) call(id string, sub *subscription) (r *graphql.Response, ok bool) {
	defer func() {
		if p := recover(); p != nil {
			s.recovered(sub.ctx, id, sub.rc, p)
			r, ok = nil, false
		}
	}()
	return sub.responses(sub.ctx), true
}

// recovered turns a panic of the operation into an error message, through
// the executor's recover function and error presenter.
func (s *socket) recovered(ctx context.Context, id string, rc *graphql.OperationContext, p any) {
	err := rc.Recover(ctx, p)
	gqlErr, ok := errors.AsType[*gqlerror.Error](err)
	if !ok {
		gqlErr = gqlerror.WrapIfUnwrapped(err)
	}
	s.sendErrors(id, s.exec.DispatchError(ctx, gqlerror.List{gqlErr}).Errors)
}

// finish ends operation id and, unless the socket is ending or a new
// operation took the id, tells the client with complete (after an error
// message only on graphql-ws: see completeAfterError).
func (s *socket) finish(id string, sub *subscription, errored bool) {
	sub.cancel()
	sub.mu.Lock()
	sub.over = true
	sub.mu.Unlock()
	s.mu.Lock()
	own := s.subs[id] == sub
	if own {
		delete(s.subs, id)
	}
	s.mu.Unlock()
	if own && s.done.Err() == nil {
		if errored {
			s.completeAfterError(id)
		} else {
			s.complete(id)
		}
	}
}

func (s *socket) complete(id string) { s.send(serverMessage{Type: "complete", ID: id}) }

// completeAfterError ends operation id after an error message: on
// graphql-transport-ws the error message itself ends it ("no further
// messages will be sent"), on legacy graphql-ws a complete follows, as
// gqlgen's transport sent.
func (s *socket) completeAfterError(id string) {
	if s.legacy {
		s.complete(id)
	}
}

// sendResponse sends a result: next, or data on graphql-ws.
func (s *socket) sendResponse(id string, r *graphql.Response) {
	payload, err := json.Marshal(r)
	if err != nil {
		s.notEncoded(err)
		return
	}
	typ := "next"
	if s.legacy {
		typ = "data"
	}
	s.send(serverMessage{Type: typ, ID: id, Payload: payload})
}

// sendErrors sends an error message, which ends operation id.
func (s *socket) sendErrors(id string, errs gqlerror.List) {
	payload, err := json.Marshal(errs)
	if err != nil {
		s.notEncoded(err)
		return
	}
	s.send(serverMessage{Type: "error", ID: id, Payload: payload})
}

// notEncoded logs a result that could not be encoded: a bug, named by
// kind, since the error's text can quote the result.
func (s *socket) notEncoded(err error) {
	s.log.Error("websocket message not encoded", "kind", fmt.Sprintf("%T", err))
}

func (s *socket) send(m serverMessage) {
	if err := s.conn.writeJSON(m); err != nil && !errors.Is(err, errClosing) && !errors.Is(err, websocket.ErrCloseSent) && !errors.Is(err, net.ErrClosed) {
		s.log.Debug("websocket write failed", "err", err)
	}
}

// leaseKey holds a *lease in a request's context (KeepWhileOpen).
type leaseKey struct{}

type lease struct {
	release func()
	kept    atomic.Bool
}

// KeepWhileOpen is for a middleware holding something that must last as
// long as a websocket (a place under a per-client cap), when the handler
// returns right after the upgrade. It returns the context to serve the
// request with; if Transport accepts a socket for it, release runs once
// the socket ends. kept, called after the handler returned, reports
// whether that happened; if not, the caller releases itself.
func KeepWhileOpen(ctx context.Context, release func()) (_ context.Context, kept func() bool) {
	l := &lease{release: release}
	return context.WithValue(ctx, leaseKey{}, l), l.kept.Load
}
