package cli

import (
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"
)

func newFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("store", "", "the `URL` of the store")
	fs.String("store-timeout", "", "deadline")
	fs.Bool("dev", false, "development mode")
	fs.Duration("drain-delay", time.Second, "how long")
	fs.String("token-audience", "", "aud")
	return fs
}

func TestParseUnknownFlag(t *testing.T) {
	for _, c := range []struct {
		args    []string
		name    string
		nearest []string
	}{
		{[]string{"--stroe", "x"}, "stroe", []string{"store"}},
		{[]string{"--dev", "--token-audeince=a"}, "token-audeince", []string{"token-audience"}},
		{[]string{"-store", "bolt:x", "--frobnicate"}, "frobnicate", nil},
		// A value that looks like a flag is the value, not a flag.
		{[]string{"--store", "--weird", "--nope"}, "nope", nil},
		{[]string{"--store-"}, "store-", []string{"store", "store-timeout"}},
	} {
		err := Parse(newFlags(), c.args)
		var ue *UnknownFlagError
		if !errors.As(err, &ue) || ue.Name != c.name || !slices.Equal(ue.Nearest, c.nearest) {
			t.Errorf("Parse(%q) = %v, want unknown %q near %v", c.args, err, c.name, c.nearest)
			continue
		}
		if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "--"+c.name) {
			t.Errorf("message %q", err)
		}
	}
	if err := Parse(newFlags(), []string{"--stroe"}); err == nil || !strings.Contains(err.Error(), "did you mean --store?") {
		t.Errorf("suggestion: %v", err)
	}
}

func TestParseOK(t *testing.T) {
	fs := newFlags()
	if err := Parse(fs, []string{"--dev", "--store=bolt:x", "--drain-delay", "2s", "rest", "--nope"}); err != nil {
		t.Fatal(err)
	}
	if fs.NArg() != 2 {
		t.Errorf("args %q", fs.Args())
	}
	for _, h := range []string{"-h", "--help", "-help"} {
		if err := Parse(newFlags(), []string{h}); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: %v", h, err)
		}
	}
	if err := Parse(newFlags(), []string{"--drain-delay", "soon"}); err == nil || strings.Contains(err.Error(), "\n") {
		t.Errorf("bad value: %v", err)
	}
}

func TestNearest(t *testing.T) {
	names := []string{"keys", "keyseeds", "kek", "hls", "token", "adminkey", "kid"}
	for in, want := range map[string][]string{
		"key":      {"keys", "kek", "keyseeds"},
		"tokne":    {"token"},
		"keysedes": {"keyseeds"},
		"zzz":      nil,
	} {
		if got := Nearest(in, names); !slices.Equal(got, want) {
			t.Errorf("Nearest(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestWriteFlags(t *testing.T) {
	var b strings.Builder
	WriteFlags(&b, newFlags(), map[string]string{"store": "bolt:x from KD_STORE"})
	out := b.String()
	for _, want := range []string{
		"  --store URL", "the URL of the store (default bolt:x from KD_STORE)",
		"  --dev ", "development mode\n",
		"--drain-delay DURATION", "(default 1s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
}
