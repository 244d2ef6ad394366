package graph

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/verifier/verifier/graph/model"
	"github.com/verifier/verifier/internal/account"
	"github.com/verifier/verifier/internal/apperr"
)

// The bounds on one request. Every answer for a request of at most 64 KiB
// stays within a few KiB, and no request does more than a few dozen
// lookups or a quadratic amount of validation.
const (
	// maxMutations caps the mutation fields of one operation: register
	// hashes a password, and aliases would otherwise multiply that.
	maxMutations = 5
	// maxCost is 30 lookups; the web app's largest request
	// (verifyEmail and its four fields) costs 14.
	maxCost = 30 * LookupCost
	// schemaCost is what a __schema field costs: gqlgen weighs nothing
	// below it, and each answers the whole schema (several KiB for a
	// handful of fields), so aliases of it made a request of a few KiB
	// answer hundreds (a batch of them, megabytes). A third of maxCost:
	// GraphiQL's and code generators' one __schema per request passes.
	schemaCost = maxCost / 3
	// parserTokenLimit stops the parser early on a huge document;
	// GraphiQL's introspection query has a few hundred.
	parserTokenLimit = 5000
	// maxFields bounds the fields and fragment spreads of a document,
	// fragments expanded, before gqlgen validates it: the rule
	// OverlappingFieldsCanBeMerged compares fields pairwise, so its work
	// grows with the square of this (400 fields that all conflict take
	// about 0.1 s). GraphiQL's introspection query counts 191.
	maxFields = 400
	// maxValidationErrors is how many validation errors an answer lists
	// before one "too many validation errors".
	maxValidationErrors = 10
	// maxMessageBytes truncates an error message that quotes the request
	// (an unknown 60 KiB field name, say).
	maxMessageBytes = 300
	// subscriptionRetryAfter is the retryAfterSeconds of a subscription
	// refused by a cap: by then another may well have ended.
	subscriptionRetryAfter = 10 * time.Second
)

// LookupCost is what a field that reads the database costs towards a
// request's cost limit (Bounds.Cost): every root field of the public API
// (register also hashes a password) and of the admin API. Any other field
// costs 1, gqlgen's default.
const LookupCost = 10

// publicBounds are the public API's bounds on a request.
var publicBounds = Bounds{
	ParserTokens:     parserTokenLimit,
	Fields:           maxFields,
	ValidationErrors: maxValidationErrors,
	Mutations:        maxMutations,
	Cost:             maxCost,
	SchemaCost:       schemaCost,
	CostRule:         fmt.Sprintf("each lookup costs %d, each __schema %d, each other field 1", LookupCost, schemaCost),
}

// Bounds are the limits on one request, each checked before anything
// runs: the public API's (NewHandler) and the admin API's, each with
// values of its own. A request over the field, mutation or cost limit is
// refused with BAD_USER_INPUT; gqlgen answers one over the token limit
// with GRAPHQL_PARSE_FAILED.
type Bounds struct {
	// ParserTokens stops the parser early on a huge document.
	ParserTokens int
	// Fields caps the fields and fragment spreads of a document,
	// fragments expanded, before gqlgen validates it (fieldLimit).
	Fields int
	// ValidationErrors is how many validation errors an answer lists
	// before one "too many validation errors".
	ValidationErrors int
	// Mutations caps the mutation fields of one operation.
	Mutations int
	// Cost caps an operation's complexity, as the schema's complexity
	// functions weigh it; CostRule says how they weigh, in the words of
	// the refusal ("each lookup costs 10, each other field 1").
	Cost     int
	CostRule string
	// SchemaCost is what each __schema field adds to the cost, on top of
	// the schema's weights (gqlgen's complexity counts nothing there).
	SchemaCost int
}

// Bound sets b on srv, whose query cache is cache: a document found
// there passed validation and is not counted again. Call it after the
// extensions that resolve the query (persisted queries) and before those
// that rely on a bounded operation.
func Bound(srv *handler.Server, cache graphql.Cache[*ast.QueryDocument], b Bounds) {
	srv.SetParserTokenLimit(b.ParserTokens)
	srv.Use(fieldLimit{max: b.Fields, tokens: b.ParserTokens, cache: cache})
	srv.SetValidationRulesFn(cappedRules(b.ValidationErrors))
	srv.Use(mutationLimit{max: b.Mutations})
	srv.Use(&costLimit{max: b.Cost, rule: b.CostRule, schema: b.SchemaCost})
}

// mutationLimit caps the mutation fields in one operation. Every field of
// this schema is cheap except the mutations (register hashes a password);
// without a cap one request could alias register hundreds of times.
type mutationLimit struct{ max int }

var (
	_ graphql.HandlerExtension        = mutationLimit{}
	_ graphql.OperationContextMutator = mutationLimit{}
)

func (mutationLimit) ExtensionName() string                   { return "MutationLimit" }
func (mutationLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (l mutationLimit) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil || oc.Operation.Operation != ast.Mutation {
		return nil
	}
	if n := countFields(oc.Operation.SelectionSet, oc.Doc.Fragments, nil); n > l.max {
		return badInput("at most %d mutations per request, got %d", l.max, n)
	}
	return nil
}

func isSchema(f *ast.Field) bool { return f.Name == "__schema" }

// countFields counts the top-level fields that keep takes (nil: every
// one), looking through fragments (fieldLimit has bounded how many
// spreads there are).
func countFields(set ast.SelectionSet, frags ast.FragmentDefinitionList, keep func(*ast.Field) bool) int {
	n := 0
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if keep == nil || keep(s) {
				n++
			}
		case *ast.InlineFragment:
			n += countFields(s.SelectionSet, frags, keep)
		case *ast.FragmentSpread:
			if f := frags.ForName(s.Name); f != nil {
				n += countFields(f.SelectionSet, frags, keep)
			}
		}
	}
	return n
}

func badInput(format string, args ...any) *gqlerror.Error {
	err := gqlerror.Errorf(format, args...)
	err.Extensions = map[string]any{"code": string(apperr.BadUserInput)}
	return err
}

// weighLookups gives every root field LookupCost, so the complexity of an
// operation counts its database reads. A field added to the schema later
// costs 1 until it is listed here.
func weighLookups(c *ComplexityRoot) {
	lookup := func(child int) int { return LookupCost + child }
	c.Query.VerificationStatus = func(child int, _ string) int { return lookup(child) }
	c.Subscription.VerificationStatus = func(child int, _ string, _ *bool) int { return lookup(child) }
	c.Mutation.Register = func(child int, _ model.RegisterInput) int { return lookup(child) }
	c.Mutation.VerifyEmail = func(child int, _ string) int { return lookup(child) }
	c.Mutation.ResendVerificationEmail = func(child int, _ string) int { return lookup(child) }
	c.Mutation.VerifyEmailWithCode = func(child int, _, _ string) int { return lookup(child) }
	c.Mutation.SignIn = func(child int, _, _ string) int { return lookup(child) }
	c.Mutation.ChangeEmail = func(child int, _ string) int { return lookup(child) }
	c.Mutation.ConfirmEmailChange = func(child int, _ string) int { return lookup(child) }
}

// costLimit refuses an operation whose complexity (as the schema weighs
// it: weighLookups here) is over max: 50 aliases of verificationStatus
// would be 50 database reads.
type costLimit struct {
	max int
	// rule says how the schema weighs its fields, for the refusal.
	rule string
	// schema is what each __schema field costs (Bounds.SchemaCost).
	schema int
	es     graphql.ExecutableSchema
}

var (
	_ graphql.HandlerExtension        = (*costLimit)(nil)
	_ graphql.OperationContextMutator = (*costLimit)(nil)
)

func (*costLimit) ExtensionName() string { return "CostLimit" }

func (l *costLimit) Validate(es graphql.ExecutableSchema) error {
	l.es = es
	return nil
}

func (l *costLimit) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil {
		return nil
	}
	cost := complexity.Calculate(ctx, l.es, oc.Operation, oc.Variables)
	if l.schema > 0 {
		cost += l.schema * countFields(oc.Operation.SelectionSet, oc.Doc.Fragments, isSchema)
	}
	if cost > l.max {
		return badInput("this request costs %d, more than the limit of %d (%s); split it into smaller requests", cost, l.max, l.rule)
	}
	return nil
}

// fieldLimit refuses a document with more than max fields and fragment
// spreads (fragments expanded) before gqlgen validates it. It parses the
// query once more for that, which is linear and cheap next to what it
// prevents; a query already in gqlgen's cache passed validation and is
// not parsed again.
type fieldLimit struct {
	max int
	// tokens is the parser's token limit (Bounds.ParserTokens).
	tokens int
	cache  graphql.Cache[*ast.QueryDocument]
}

var (
	_ graphql.HandlerExtension          = fieldLimit{}
	_ graphql.OperationParameterMutator = fieldLimit{}
)

func (fieldLimit) ExtensionName() string                   { return "FieldLimit" }
func (fieldLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (l fieldLimit) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if _, ok := l.cache.Get(ctx, p.Query); ok {
		return nil
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: p.Query}, l.tokens)
	if err != nil {
		return nil // gqlgen parses again and reports it
	}
	c := fieldCounter{frags: doc.Fragments, budget: l.max, inProgress: map[string]bool{}, used: map[string]bool{}}
	ok := true
	for _, op := range doc.Operations {
		ok = ok && c.spend(op.SelectionSet)
	}
	// Validation walks unused fragments too; used ones were counted where
	// they are spread.
	for _, f := range doc.Fragments {
		ok = ok && (c.used[f.Name] || c.spend(f.SelectionSet))
	}
	if !ok {
		return badInput("this request has more than %d fields (fragments expanded); split it into smaller requests", l.max)
	}
	return nil
}

// fieldCounter counts the fields and fragment spreads of a document,
// fragments expanded, down to a budget.
type fieldCounter struct {
	frags  ast.FragmentDefinitionList
	budget int
	// inProgress are the fragments being expanded: one that spreads
	// itself is not expanded again (validation reports the cycle).
	inProgress map[string]bool
	used       map[string]bool
}

// spend takes one from the budget for each field and fragment spread in
// set, fragments expanded, and reports false as soon as it runs out, so
// the work is bounded whatever the document.
func (c *fieldCounter) spend(set ast.SelectionSet) bool {
	for _, sel := range set {
		if c.budget--; c.budget < 0 {
			return false
		}
		switch s := sel.(type) {
		case *ast.Field:
			if !c.spend(s.SelectionSet) {
				return false
			}
		case *ast.InlineFragment:
			if !c.spend(s.SelectionSet) {
				return false
			}
		case *ast.FragmentSpread:
			f := c.frags.ForName(s.Name)
			if f == nil || c.inProgress[s.Name] {
				continue
			}
			c.used[s.Name] = true
			c.inProgress[s.Name] = true
			ok := c.spend(f.SelectionSet)
			delete(c.inProgress, s.Name)
			if !ok {
				return false
			}
		}
	}
	return true
}

// cappedRules returns gqlgen's default validation rules, each reporting
// through one counter per validation: the first max errors are kept, then
// one "too many validation errors", then nothing. gqlgen re-adds
// FieldsOnCorrectType and ScalarLeafs by name only when they are missing,
// so the wrapped ones stay.
func cappedRules(max int) func() *rules.Rules {
	return func() *rules.Rules {
		n := 0 // gqlparser runs the rules of one validation on one goroutine
		capped := rules.NewRules()
		for name, rule := range rules.NewDefaultRules().GetInner() {
			capped.AddRule(name, func(ev *core.Events, addError core.AddErrFunc) {
				rule(ev, func(opts ...core.ErrorOption) {
					n++
					switch {
					case n <= max:
						addError(opts...)
					case n == max+1:
						addError(core.Message("too many validation errors; the first %d are shown", max))
					}
				})
			})
		}
		return capped
	}
}

// socketKey holds the count of a websocket's open subscriptions in the
// connection's context, set when the connection is initialised.
type socketKey struct{}

func withSocketCount(ctx context.Context) context.Context {
	return context.WithValue(ctx, socketKey{}, new(atomic.Int64))
}

// subscriptionLimit caps the subscriptions open on one websocket and in
// the whole process. Beyond a cap that subscription gets RATE_LIMITED;
// the socket and its other subscriptions carry on.
type subscriptionLimit struct {
	perSocket, total int64 // 0 is no cap
	open             atomic.Int64
	present          graphql.ErrorPresenterFunc
}

var (
	_ graphql.HandlerExtension     = (*subscriptionLimit)(nil)
	_ graphql.OperationInterceptor = (*subscriptionLimit)(nil)
)

func (*subscriptionLimit) ExtensionName() string                   { return "SubscriptionLimit" }
func (*subscriptionLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (l *subscriptionLimit) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if oc.Operation == nil || oc.Operation.Operation != ast.Subscription {
		return next(ctx)
	}
	release, err := l.acquire(ctx)
	if err != nil {
		return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{l.present(ctx, err)}})
	}
	// The operation's context ends with the subscription whatever ends it;
	// the end of the stream releases first, so a client that gets
	// "complete" may subscribe again at once.
	context.AfterFunc(ctx, release)
	responses := next(ctx)
	return func(ctx context.Context) *graphql.Response {
		r := responses(ctx)
		if r == nil {
			release()
		}
		return r
	}
}

func (l *subscriptionLimit) acquire(ctx context.Context) (release func(), err error) {
	socket, _ := ctx.Value(socketKey{}).(*atomic.Int64)
	if socket == nil {
		socket = new(atomic.Int64) // not over a websocket: no per-socket count
	}
	if n := socket.Add(1); l.perSocket > 0 && n > l.perSocket {
		socket.Add(-1)
		return nil, apperr.Limited(subscriptionRetryAfter, "at most %d subscriptions per connection; end one or open another connection", l.perSocket)
	}
	if n := l.open.Add(1); l.total > 0 && n > l.total {
		l.open.Add(-1)
		socket.Add(-1)
		return nil, apperr.Limited(subscriptionRetryAfter, "the server holds as many subscriptions as it can; try again in %d seconds", account.RetryAfterSeconds(subscriptionRetryAfter))
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			l.open.Add(-1)
			socket.Add(-1)
		})
	}, nil
}
