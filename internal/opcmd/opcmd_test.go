package opcmd

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/config"
	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

func TestHelpAndParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args   []string
		status int
		done   bool
	}{
		{nil, 2, true},
		{[]string{"-h"}, 0, true},
		{[]string{"--help"}, 0, true},
		{[]string{"help"}, 0, true},
		{[]string{"list"}, 0, false},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		status, done := Help(tt.args, "Usage: x\n", &stderr)
		require.Equal(t, tt.status, status, "%v", tt.args)
		require.Equal(t, tt.done, done, "%v", tt.args)
		require.Equal(t, tt.done, stderr.String() == "Usage: x\n", "%v: usage shown when done", tt.args)
	}
	for _, tt := range []struct {
		args   []string
		status int
		done   bool
	}{{[]string{"-h"}, 0, true}, {[]string{"-nope"}, 2, true}, {[]string{"x"}, 0, false}} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(&bytes.Buffer{})
		status, done := Parse(fs, tt.args)
		require.Equal(t, tt.status, status, "%v", tt.args)
		require.Equal(t, tt.done, done, "%v", tt.args)
	}
}

// Open reports bad settings (2) and a refusal (1) without opening the
// database, and opens it otherwise.
func TestOpen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "verifier.db")
	refused := errors.New("not with these settings")
	tests := []struct {
		name   string
		env    map[string]string
		refuse func(config.Config) error
		status int
		want   string
	}{
		{"bad setting", map[string]string{"SESSION_TTL": "soon"}, nil, 2, "invalid configuration"},
		{"refused", nil, func(config.Config) error { return refused }, 1, "verifier: not with these settings"},
		{"opened", nil, func(config.Config) error { return nil }, 0, ""},
	}
	for _, tt := range tests {
		env := map[string]string{"DATABASE_URL": "sqlite:" + path}
		for k, v := range tt.env {
			env[k] = v
		}
		var stderr bytes.Buffer
		db, cfg, status := Open(context.Background(), func(k string) string { return env[k] }, &stderr, tt.refuse)
		require.Equal(t, tt.status, status, tt.name)
		require.Contains(t, stderr.String(), tt.want, tt.name)
		_, err := os.Stat(path)
		if status != 0 {
			require.Nil(t, db, tt.name)
			require.ErrorIs(t, err, fs.ErrNotExist, "%s: the database was opened", tt.name)
			continue
		}
		require.NotNil(t, db, tt.name)
		require.Equal(t, "sqlite:"+path, cfg.DatabaseURL)
		require.NoError(t, err)
		require.NoError(t, db.Close())
	}
}
