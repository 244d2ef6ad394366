// Package version says which build of verifier is running: from the
// module's build information (go install, go build in a clone), or from
// the -ldflags -X values a release build sets.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by release builds (.goreleaser.yaml), e.g.
//
//	-ldflags "-X github.com/verifier/verifier/internal/version.version=v1.2.3
//	          -X github.com/verifier/verifier/internal/version.commit=abc1234
//	          -X github.com/verifier/verifier/internal/version.date=2026-12-06T12:00:00Z"
//
// Empty ones fall back to the build information the go command records.
var version, commit, date string

// Info describes the running build.
type Info struct {
	// Version is the module version (v1.2.3), or "(devel)" for a build
	// from a work tree without -X.
	Version string
	// Revision is the VCS commit, "" if unknown (e.g. -buildvcs=false).
	Revision string
	// Time is the commit's time (RFC 3339), "" if unknown.
	Time string
	// Modified reports uncommitted changes in the work tree built.
	Modified bool
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// Get returns the running build's Info.
func Get() Info {
	i := Info{Version: "(devel)", GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" {
			i.Version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				i.Revision = s.Value
			case "vcs.time":
				i.Time = s.Value
			case "vcs.modified":
				i.Modified = s.Value == "true"
			}
		}
	}
	if version != "" {
		i.Version = version
	}
	if commit != "" {
		// A release is built from a clean tag: what the build saw as
		// modified (goreleaser's own files) is not the source's state.
		i.Revision, i.Modified = commit, false
	}
	if date != "" {
		i.Time = date
	}
	return i
}

// ShortRevision is the revision's first 7 characters, as git prints it.
func (i Info) ShortRevision() string {
	if len(i.Revision) > 7 {
		return i.Revision[:7]
	}
	return i.Revision
}

// String is the line `verifier -version` prints, e.g.
// "verifier v1.2.3 (commit abc1234, built 2026-12-06T12:00:00Z, go1.26.8)".
func (i Info) String() string {
	rev := i.ShortRevision()
	if rev == "" {
		rev = "unknown"
	}
	if i.Modified {
		rev += "-dirty"
	}
	built := i.Time
	if built == "" {
		built = "unknown"
	}
	return fmt.Sprintf("verifier %s (commit %s, built %s, %s)", i.Version, rev, built, i.GoVersion)
}
