package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/keystore"
)

func TestOriginMatcher(t *testing.T) {
	allow, err := newOriginMatcher([]string{"https://player.example.com", "https://*.cdn.example.net", "http://localhost:3000"})
	if err != nil {
		t.Fatal(err)
	}
	for origin, want := range map[string]bool{
		"https://player.example.com":       true,
		"HTTPS://PLAYER.EXAMPLE.COM":       true,
		"http://player.example.com":        false,
		"https://player.example.com:8443":  false,
		"https://a.cdn.example.net":        true,
		"https://a.b.cdn.example.net":      true,
		"https://cdn.example.net":          false,
		"https://evilcdn.example.net":      false,
		"https://a.cdn.example.net.evil":   false,
		"https://a.cdn.example.net:444":    false,
		"http://a.cdn.example.net":         false,
		"http://localhost:3000":            true,
		"http://localhost:3001":            false,
		"null":                             false,
		"":                                 false,
		"https://x@a.cdn.example.net":      false,
		"https://a.cdn.example.net/path":   false,
		"https://player.example.com.evil/": false,
	} {
		if got := allow(origin); got != want {
			t.Errorf("allow(%q) = %v, want %v", origin, got, want)
		}
	}
	any, err := newOriginMatcher([]string{"*"})
	if err != nil || !any("https://whatever.example") || any("null") {
		t.Fatalf("* matcher: %v", err)
	}
	if m, err := newOriginMatcher(nil); m != nil || err != nil {
		t.Fatal("empty list must turn CORS off")
	}
	for _, bad := range []string{"player.example.com", "ftp://x.example", "https://a.*.example.com", "https://*example.com", "https://x.example/path", "https://*."} {
		if _, err := newOriginMatcher([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestStripBearer(t *testing.T) {
	for in, want := range map[string]string{
		"Bearer abc":  "abc",
		"bearer=abc":  "abc",
		"BEARER  abc": "abc",
		"Bearerabc":   "Bearerabc",
		"abc":         "abc",
	} {
		if got, _ := stripBearer(in); got != want {
			t.Errorf("stripBearer(%q) = %q, want %q", in, got, want)
		}
	}
}

// fakeVerifier grants the KIDs it is told, for any token "good".
type fakeVerifier struct{ grant [16]byte }

func (f fakeVerifier) Verify(raw string) (auth.Claims, error) {
	if raw != "good" {
		return auth.Claims{}, &auth.Error{Reason: auth.ReasonBadSignature, Err: errors.New("fake")}
	}
	return auth.Claims{KeyIDs: [][16]byte{f.grant}}, nil
}

type fakeKeys struct {
	keys  map[keystore.KeyID]keystore.Key
	err   error
	calls int
}

func (f *fakeKeys) Get(_ context.Context, id keystore.KeyID) (keystore.Key, error) {
	f.calls++
	if f.err != nil {
		return keystore.Key{}, f.err
	}
	k, ok := f.keys[id]
	if !ok {
		return keystore.Key{}, keystore.ErrNotFound
	}
	return k, nil
}

func newTestHandler(t testing.TB, keys *fakeKeys, grant keystore.KeyID) (*Handler, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	h, err := New(Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Verifier: fakeVerifier{grant: grant}, Keys: keys, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return h, reg
}

// TestGrantDecidedBeforeLookup: a token that does not grant the key is
// refused without asking the store, so the answer cannot reveal whether
// the key exists.
func TestGrantDecidedBeforeLookup(t *testing.T) {
	granted := keystore.KeyID{1}
	keys := &fakeKeys{keys: map[keystore.KeyID]keystore.Key{granted: {ID: granted}}}
	h, reg := newTestHandler(t, keys, granted)
	for _, kid := range []keystore.KeyID{{2}, {3}} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/keys/"+kid.String(), nil)
		req.Header.Set("Authorization", "Bearer good")
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Fatalf("status %d", rec.Code)
		}
	}
	if keys.calls != 0 {
		t.Fatalf("the store was asked %d times for keys the token does not grant", keys.calls)
	}
	// Bad tokens never reach the store either, and are counted by reason.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/keys/"+granted.String(), nil)
	req.Header.Set("Authorization", "Bearer bad")
	h.ServeHTTP(rec, req)
	if rec.Code != 401 || keys.calls != 0 {
		t.Fatalf("bad token: %d, store calls %d", rec.Code, keys.calls)
	}
	if v := counterValue(t, reg, "keydelivery_token_verifications_total", "result", "bad_signature"); v != 1 {
		t.Fatalf("bad_signature counter = %v", v)
	}
}

// counterValue reads one series of a counter from the registry.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}

// TestStoreErrors maps store failures: unavailable is 503 with Retry-After
// (a player that gets 404 gives up for good), anything else is 500 without
// the error's text.
func TestStoreErrors(t *testing.T) {
	id := keystore.KeyID{9}
	for _, c := range []struct {
		err    error
		status int
		reason string
	}{
		{keystore.ErrUnavailable, 503, "store_unavailable"},
		{context.DeadlineExceeded, 500, ""},
		{context.Canceled, 503, "store_unavailable"},
		{errors.New("boom: secret detail"), 500, ""},
		{keystore.ErrNotFound, 404, "unknown_key"},
		// A lost store: a key it does not hold may be one it lost.
		{&keystore.StoreLostError{Why: "marker gone"}, 503, "store_lost"},
		{fmt.Errorf("x: %w", keystore.ErrFull), 503, "store_full"},
	} {
		h, _ := newTestHandler(t, &fakeKeys{err: c.err}, id)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/keys/"+id.String(), nil)
		req.Header.Set("Authorization", "Bearer good")
		h.ServeHTTP(rec, req)
		if rec.Code != c.status {
			t.Errorf("%v: status %d, want %d", c.err, rec.Code, c.status)
		}
		if c.status == 503 && rec.Header().Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After")
		}
		if c.reason != "" && !strings.Contains(rec.Body.String(), `"reason":"`+c.reason+`"`) {
			t.Errorf("%v: body %s, want reason %s", c.err, rec.Body.String(), c.reason)
		}
		if strings.Contains(rec.Body.String(), "secret detail") {
			t.Errorf("error text leaked: %s", rec.Body.String())
		}
	}
}
