package admin

import (
	"fmt"

	"github.com/verifier/verifier/graph"
	adminsvc "github.com/verifier/verifier/internal/admin"
	"github.com/verifier/verifier/internal/status"
)

// The bounds on one admin request (graph.Bounds). Its callers hold
// ADMIN_TOKEN, yet a script gone wrong (or a token gone astray) must not
// read the user table many pages at a time: the largest request the API
// is made for, a whole page of users with everything about them, passes,
// and aliased copies of it are refused.
const (
	// lookupCost is what a root field costs: each reads the database, as
	// on the public API.
	lookupCost = graph.LookupCost
	// maxCost is one whole page (MaxPage entries) selecting 25 fields
	// each. The largest request, users(first: 200) with every field of a
	// user, its deliveries, cursors, pageInfo and totalCount, costs 3,410
	// (4,410 with __typename in every selection, as Apollo Client adds
	// it); two of them, 6,820, are refused.
	maxCost = adminsvc.MaxPage * 25
	// maxMutations caps the mutations of one request: each is a write
	// transaction (deleteUser erases across every table) on the one
	// writer every sign-up waits for under SQLite. A script acting on
	// many users sends ten at a time.
	maxMutations = 10
	// maxFields bounds the fields and fragment spreads of a document
	// before gqlgen validates it, whose work grows with the square of
	// their number (400 that all conflict take about 0.1 s), as on the
	// public API. GraphiQL's introspection query counts 191, the largest
	// request 17.
	maxFields = 400
	// parserTokenLimit stops the parser early on a huge document;
	// GraphiQL's introspection query has a few hundred.
	parserTokenLimit = 5000
	// maxValidationErrors is how many validation errors an answer lists
	// before one "too many validation errors".
	maxValidationErrors = 10
)

// bounds are the admin API's bounds on a request.
var bounds = graph.Bounds{
	ParserTokens:     parserTokenLimit,
	Fields:           maxFields,
	ValidationErrors: maxValidationErrors,
	Mutations:        maxMutations,
	Cost:             maxCost,
	CostRule:         fmt.Sprintf("each lookup costs %d, each other field 1, and what a page selects counts once per entry", lookupCost),
}

// weigh sets what the admin schema's fields cost towards maxCost. A root
// field costs lookupCost and what it selects; a page (users, deadLetters,
// failedWebhooks) costs lookupCost and what it selects once per entry it
// may hold, so 200 users cost 200 times what one does. Any other field
// costs 1, gqlgen's default: a list without first (a user's deliveries)
// counts once, as its length is not known before it is read.
func weigh(c *ComplexityRoot) {
	lookup := func(child int) int { return lookupCost + child }
	page := func(child int, first *int) int { return lookupCost + entries(first)*child }
	c.Query.User = func(child int, _, _ *string) int { return lookup(child) }
	c.Query.Users = func(child int, first *int, _ *string, _ *status.Status, _ *string) int { return page(child, first) }
	c.Query.DeadLetters = page
	c.Query.FailedWebhooks = page
	c.Mutation.ResendVerificationEmail = func(child int, _ string) int { return lookup(child) }
	c.Mutation.MarkVerified = func(child int, _ string) int { return lookup(child) }
	c.Mutation.DeleteUser = func(child int, _ string) int { return lookup(child) }
	c.Mutation.ReplayDeadLetter = func(child int, _ string) int { return lookup(child) }
	c.Mutation.ReplayWebhook = func(child int, _ string) int { return lookup(child) }
}

// entries is how many entries a page asked for with first may hold:
// first within 1 to MaxPage (outside, the resolver refuses it, saying
// why), DefaultPage without it.
func entries(first *int) int {
	return min(max(orDefault(first), 1), adminsvc.MaxPage)
}
