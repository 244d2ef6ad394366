package docs_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/verifier/verifier/docs"
	"github.com/verifier/verifier/internal/publicevent"
	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

type schema struct {
	Required   []string          `yaml:"required"`
	Properties map[string]schema `yaml:"properties"`
	Ref        string            `yaml:"$ref"`
	AllOf      []schema          `yaml:"allOf"`
	Const      string            `yaml:"const"`
}

type document struct {
	Channels map[string]struct {
		Address  string `yaml:"address"`
		Bindings struct {
			AMQP struct {
				Exchange struct {
					Name string `yaml:"name"`
				} `yaml:"exchange"`
			} `yaml:"amqp"`
		} `yaml:"bindings"`
	} `yaml:"channels"`
	Components struct {
		Messages map[string]struct {
			Name    string `yaml:"name"`
			Payload schema `yaml:"payload"`
		} `yaml:"messages"`
		Schemas map[string]schema `yaml:"schemas"`
	} `yaml:"components"`
}

// The document lists exactly the types the code can publish, each on
// verifier.public with the data fields the Go type encodes.
func TestAsyncAPIListsEveryType(t *testing.T) {
	var doc document
	require.NoError(t, yaml.Unmarshal(docs.AsyncAPI, &doc))

	var messages, channels []string
	dataOf := map[string]schema{}
	for _, m := range doc.Components.Messages {
		messages = append(messages, m.Name)
		var typ string
		var data schema
		for _, part := range m.Payload.AllOf {
			if p, ok := part.Properties["type"]; ok {
				typ = p.Const
				ref := part.Properties["data"].Ref
				data = doc.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")]
			}
		}
		require.Equal(t, m.Name, typ, "message %s names its type in its payload", m.Name)
		dataOf[m.Name] = data
	}
	for _, c := range doc.Channels {
		channels = append(channels, c.Address)
		require.Equal(t, "verifier.public", c.Bindings.AMQP.Exchange.Name)
	}
	require.ElementsMatch(t, publicevent.Types, messages, "the document's messages are publicevent.Types")
	require.ElementsMatch(t, publicevent.Types, channels, "one routing key per type")

	for _, ev := range []publicevent.Event{publicevent.UserRegistered{}, publicevent.UserVerified{}, publicevent.EmailChanged{}, publicevent.UserDeleted{}, publicevent.EmailFailed{}} {
		fields := jsonFields(t, ev)
		data := dataOf[ev.Type()]
		require.ElementsMatch(t, fields, data.Required, "%s: every data field required", ev.Type())
		require.ElementsMatch(t, fields, keys(data.Properties), "%s: the document's data fields are the Go type's", ev.Type())
	}

	envelope := doc.Components.Schemas["CloudEvent"]
	body, err := publicevent.Writer{}.Encode(uuid.New(), time.Now(), publicevent.UserDeleted{UserID: uuid.New(), DeletedAt: time.Now()})
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m))
	require.ElementsMatch(t, keys(m), envelope.Required, "the envelope's attributes are the document's")
}

func jsonFields(t *testing.T, v any) []string {
	t.Helper()
	var out []string
	rt := reflect.TypeOf(v)
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		out = append(out, name)
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
