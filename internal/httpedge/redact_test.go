package httpedge

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

const (
	testJWT    = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlLyJ9.c2lnbmF0dXJlLWJ5dGVzLWdvLWhlcmUtMDEyMzQ1Njc4OWFiY2RlZg"
	testSecret = "kda_Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8"
)

func TestRedact(t *testing.T) {
	// No "eyJ": a JWT whose header was written with a space, caught by
	// its three long segments.
	dotted := "eyAiYWxnIjogIkVTMjU2IiB9ABCDEF.eyAiaXNzIjogImh0dHBzOi8veCJ9AB.c2lnbmF0dXJl"
	dotted = strings.ReplaceAll(dotted, "eyA", "ab1")
	for _, tt := range []struct{ in, want string }{
		{"/keys/" + testJWT, "/keys/REDACTED"},
		{"/keys/0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f&token=" + testJWT, "/keys/0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f&token=REDACTED"},
		{"/nope/" + testJWT + "/x", "/nope/REDACTED/x"},
		{"Bearer " + testJWT, "Bearer REDACTED"},
		{"Bearer%20" + testJWT, "REDACTED"},
		{`{"kids":["` + testJWT + `"]}`, `{"kids":["REDACTED"]}`},
		{`unknown field "` + testSecret + `"`, `unknown field "REDACTED"`},
		{"/api/keys/" + testSecret, "/api/keys/REDACTED"},
		{"?auth=" + url.QueryEscape("KDA_x"), "?auth=REDACTED"},
		{"%6Bda_secret", "REDACTED"},
		{dotted, "REDACTED"},
		{"eyJhbGciOi", "REDACTED"}, // a cut token is still a token's start
		// Not credentials.
		{"/keys/0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f", "/keys/0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f"},
		{"https://player.example.com/a.b.c", "https://player.example.com/a.b.c"},
		{"nb:kid:UUID:0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f", "nb:kid:UUID:0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f"},
		{"mykeyvault.vault.azure.net", "mykeyvault.vault.azure.net"},
		{"", ""},
	} {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestQuote(t *testing.T) {
	if got := Quote("abc\x00\ndef", 32); got != "abc??def" {
		t.Errorf("Quote = %q", got)
	}
	if got := Quote(strings.Repeat("x", 100), 10); got != strings.Repeat("x", 10)+"..." {
		t.Errorf("Quote = %q", got)
	}
	if got := Quote(testJWT, 10); got != "REDACTED" {
		t.Errorf("Quote = %q", got)
	}
}

func TestQueryCredential(t *testing.T) {
	for _, tt := range []struct {
		query string
		want  bool
	}{
		{"auth=" + testSecret, true},
		{"Authorization=Bearer%20whatever", true},
		{"x=bearer=abc", true},
		{"purge=" + testSecret, true},
		{testSecret + "=1", true},
		{"token=x", true},
		{"ACCESS_TOKEN=x", true},
		{"q=" + testJWT, true},
		{"purge=true&type=4", false},
		{"cursor=0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f", false},
		{"", false},
	} {
		q, err := url.ParseQuery(tt.query)
		if err != nil {
			t.Fatal(err)
		}
		if got := QueryCredential(q); got != tt.want {
			t.Errorf("QueryCredential(%q) = %v", tt.query, got)
		}
	}
}

func TestRedactedURIByValue(t *testing.T) {
	for raw, want := range map[string]string{
		"/keys/" + testJWT: "/keys/REDACTED",
		"/keys/x?kid=1&Authorization=Bearer%20" + testSecret: "/keys/x?kid=1&authorization=REDACTED",
		"/api/keys?x=" + testSecret:                          "/api/keys?x=REDACTED",
		"/api/keys?" + testSecret:                            "/api/keys?REDACTED",
		"/?kid=1&t=" + testJWT[:60]:                          "/?kid=1&t=REDACTED",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := RedactedURI(u); got != want {
			t.Errorf("RedactedURI(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestRedactingHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(RedactingHandler(slog.NewJSONHandler(&buf, nil))).With("pre", testSecret)
	log.Info("got "+testJWT, "err", errors.New("bad "+testJWT), "kids", []string{"ok", testJWT},
		slog.Group("g", "inner", testSecret), "n", 3)
	out := buf.String()
	if strings.Contains(out, "eyJ") || strings.Contains(out, "kda_") {
		t.Fatalf("a credential reached the log: %s", out)
	}
	for _, want := range []string{`"msg":"got REDACTED"`, `"err":"bad REDACTED"`, `"kids":["ok","REDACTED"]`, `"g":{"inner":"REDACTED"}`, `"pre":"REDACTED"`, `"n":3`} {
		if !strings.Contains(out, want) {
			t.Errorf("log line lacks %s: %s", want, out)
		}
	}
}

func TestWriteProblemRedacts(t *testing.T) {
	p := NewProblem(400, "invalid_request", "unknown_field", `unknown field "`+testSecret+`"`)
	p.KIDs = []string{testJWT}
	p.Problems = []EntryProblem{{Index: 0, KID: testJWT, Detail: "x " + testSecret}}
	w := httptest.NewRecorder()
	if err := WriteProblem(w, httptest.NewRequest("GET", "/", nil), &p); err != nil {
		t.Fatal(err)
	}
	if body := w.Body.String(); strings.Contains(body, "eyJ") || strings.Contains(body, "kda_") {
		t.Fatalf("the body echoes a credential: %s", body)
	}
}

func TestRequestIDRefusesCredentials(t *testing.T) {
	for _, in := range []string{testJWT[:60], "kda_abc", "eyJhbGciOiJFUzI1NiJ9"} {
		if got := RequestID(in); got == in {
			t.Errorf("RequestID kept %q", in)
		}
	}
	if got := RequestID("kdctl-123.abc"); got != "kdctl-123.abc" {
		t.Errorf("RequestID refused a plain ID: %q", got)
	}
}

// FuzzRedact: whatever the input, what Redact returns holds no word shaped
// like a credential, and redacting again changes nothing.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{"/keys/" + testJWT, "?auth=" + testSecret, "Bearer%20" + testJWT, "a.b.c", "%6Bda_x", "eyJ", "kda_", "%%%", "x%2525kda_y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := Redact(s)
		if HasCredential(r) {
			t.Fatalf("Redact(%q) = %q still holds a credential", s, r)
		}
		if Redact(r) != r {
			t.Fatalf("Redact is not idempotent on %q", s)
		}
	})
}

func TestEachJSON(t *testing.T) {
	var got []string
	err := EachJSON([]byte(` [ {"a":1}, 2 ,"x",[3]] `), func(i int, elem []byte) error {
		got = append(got, string(elem))
		return nil
	})
	if err != nil || strings.Join(got, "|") != `{"a":1}|2|"x"|[3]` {
		t.Fatalf("EachJSON: %q, %v", got, err)
	}
	for body, kind := range map[string]error{
		`{}`:              ErrBodyNotObject,
		`[1,`:             ErrBodySyntax,
		`[1] [2]`:         ErrBodyTrailing,
		`[{"a":1,"a":2}]`: ErrDuplicateMember,
		"[\"\xff\"]":      ErrBodySyntax,
		``:                ErrBodySyntax,
	} {
		if err := EachJSON([]byte(body), func(int, []byte) error { return nil }); !errors.Is(err, kind) {
			t.Errorf("EachJSON(%q) = %v, want %v", body, err, kind)
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := EachJSON([]byte(`[1,2,3]`), func(int, []byte) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("fn's error: %v after %d", err, n)
	}
}
