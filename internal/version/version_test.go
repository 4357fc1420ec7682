package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261206051947-adcaf0a99855"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "adcaf0a99855e2a2b4d4109352419bed003ee9ce"},
			{Key: "vcs.time", Value: "2026-12-06T05:19:47Z"}, {Key: "vcs.modified", Value: "true"}}}
	i := FromBuildInfo(bi, "", "")
	want := "v0.0.0-20261206051947-adcaf0a99855 (revision adcaf0a99855e2a2b4d4109352419bed003ee9ce, 2026-12-06T05:19:47Z, modified) go1.26.8"
	if i.String() != want {
		t.Errorf("String() = %q, want %q", i.String(), want)
	}
	// Stamped values win.
	if i := FromBuildInfo(bi, "v1.2.3", "abc"); i.Version != "v1.2.3" || i.Revision != "abc" {
		t.Errorf("stamped: %+v", i)
	}
	// Nothing recorded: (devel), and how to get a revision.
	i = FromBuildInfo(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "", "")
	if s := i.String(); !strings.HasPrefix(s, "(devel) (no version control revision recorded") || !strings.Contains(s, "make build") {
		t.Errorf("devel: %q", s)
	}
	if i := FromBuildInfo(nil, "", ""); i.Version != "(devel)" {
		t.Errorf("nil: %+v", i)
	}
}
