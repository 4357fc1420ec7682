package httpedge

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestRedactedURI(t *testing.T) {
	long := strings.Repeat("x", 200)
	for in, want := range map[string]string{
		"/keys/abc?token=eyJ.secret.sig":        "/keys/abc?token=REDACTED",
		"/?kid=abc&TOKEN=Bearer%3Deyj.x.y":      "/?kid=abc&token=REDACTED",
		"/?Token=a&kid=b&token=c":               "/?token=REDACTED&kid=b&token=REDACTED",
		"/?access_token=abc":                    "/?access_token=REDACTED",
		"/keys/abc":                             "/keys/abc",
		"/?to%6Ben=eyJ.hidden.sig":              "/?token=REDACTED",
		"/?" + long:                             "/?REDACTED",
		"/?kid=a&name=" + long:                  "/?kid=a&REDACTED",
		"/?" + strings.Repeat("n", 40) + "=v":   "/?REDACTED",
		"/?kid=0a4f6e08-b4e5-4a25-9c4b-6e3e4a2": "/?kid=0a4f6e08-b4e5-4a25-9c4b-6e3e4a2",
	} {
		u, err := url.ParseRequestURI(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := RedactedURI(u); got != want {
			t.Errorf("RedactedURI(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRequestID(t *testing.T) {
	if got := RequestID("kdctl-1234.a_b"); got != "kdctl-1234.a_b" {
		t.Errorf("plain incoming ID replaced: %q", got)
	}
	for _, bad := range []string{"", "a b", "x\ninjected", strings.Repeat("a", 65), "ü"} {
		got := RequestID(bad)
		if got == bad || len(got) != 24 {
			t.Errorf("RequestID(%q) = %q, want a new 24-digit ID", bad, got)
		}
	}
	if a, b := NewRequestID(), NewRequestID(); a == b {
		t.Error("two request IDs are equal")
	}
}

func TestRetryAfter(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "1", time.Millisecond: "1", time.Second: "1", 1500 * time.Millisecond: "2", 30 * time.Second: "30"} {
		if got := RetryAfter(d); got != want {
			t.Errorf("RetryAfter(%v) = %q, want %q", d, got, want)
		}
	}
}
