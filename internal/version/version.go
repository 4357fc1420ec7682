// Package version tells which build of keydelivery is running: the module
// version and the version control revision that the Go toolchain records
// in every binary (runtime/debug.ReadBuildInfo), or the values a release
// build stamps with -ldflags -X. Both commands (the server and kdctl)
// print it with --version. Standard library only.
package version

import (
	"runtime/debug"
	"strings"
)

// Info is one build's identity.
type Info struct {
	// Version is the module version: a release tag, a pseudo-version
	// (v0.0.0-DATE-REVISION) for a build from a clone, or "(devel)" when
	// the toolchain recorded none.
	Version string
	// Revision is the version control commit ("" when not recorded).
	Revision string
	// Time is the commit's time, RFC 3339 ("" when not recorded).
	Time string
	// Modified: the working tree had uncommitted changes.
	Modified bool
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// Read returns the running binary's Info. stampedVersion and
// stampedCommit, set with -ldflags "-X main.version=... -X main.commit=...",
// win over what the toolchain recorded.
func Read(stampedVersion, stampedCommit string) Info {
	bi, _ := debug.ReadBuildInfo()
	return FromBuildInfo(bi, stampedVersion, stampedCommit)
}

// FromBuildInfo is Read for a given build info (nil: none recorded).
func FromBuildInfo(bi *debug.BuildInfo, stampedVersion, stampedCommit string) Info {
	i := Info{Version: stampedVersion, Revision: stampedCommit}
	if bi != nil {
		i.GoVersion = bi.GoVersion
		if i.Version == "" && bi.Main.Version != "" {
			i.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if i.Revision == "" {
					i.Revision = s.Value
				}
			case "vcs.time":
				i.Time = s.Value
			case "vcs.modified":
				i.Modified = s.Value == "true"
			}
		}
	}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	return i
}

// String is the --version line after the command's name: the version,
// then the revision, its time and whether the tree was modified, and the
// toolchain; without a revision it says how to get one.
func (i Info) String() string {
	var b strings.Builder
	b.WriteString(i.Version)
	if i.Revision != "" {
		b.WriteString(" (revision " + i.Revision)
		if i.Time != "" {
			b.WriteString(", " + i.Time)
		}
		if i.Modified {
			b.WriteString(", modified")
		}
		b.WriteString(")")
	} else {
		b.WriteString(" (no version control revision recorded: build from a git clone with make build, or go build -buildvcs=true)")
	}
	if i.GoVersion != "" {
		b.WriteString(" " + i.GoVersion)
	}
	return b.String()
}
