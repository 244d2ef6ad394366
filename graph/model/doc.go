// Package model holds the GraphQL input and payload types gqlgen generates
// from the schema. Types that carry a fact of the domain (a status, a
// delivery) are not here: gqlgen.yml binds them to package status.
package model
