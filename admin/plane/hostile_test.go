package plane

import (
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/admin/audit"
	"github.com/keydelivery/keydelivery/internal/ratelimit"
	"github.com/keydelivery/keydelivery/internal/syncbuf"
)

type testClock struct{ t atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Unix(0, c.t.Load()) }
func (c *testClock) advance(d time.Duration) { c.t.Add(int64(d)) }

func sendFrom(p *Plane, target, secret, remote string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", target, nil)
	if secret != "" {
		r.Header.Set("Authorization", "Bearer "+secret)
	}
	r.RemoteAddr = remote
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	return w
}

// TestAuthFailureBudget (issue 12: "wrong admin secrets 64 µs; nothing
// limits either, and 87,295 wrong admin secrets left 0 audit records"):
// an address over its budget of failed authentications gets 429
// rate_limited before its credential is looked at, and the failures are
// audited at a bounded rate, with counts.
func TestAuthFailureBudget(t *testing.T) {
	c := &testClock{}
	c.t.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	p, keys, w, reg := newTestPlaneWith(t, func(o *Options) {
		o.AuthFailures = ratelimit.Limit{Rate: 1, Burst: 5}
		o.Now = c.now
	})
	const attacker, admin = "192.0.2.66:4000", "10.0.0.5:5000"
	for i := range 5 {
		if r := sendFrom(p, "/api/things/a", "kda_guess-"+string(rune('a'+i)), attacker); r.Code != 401 {
			t.Fatalf("guess %d: %d", i, r.Code)
		}
	}
	for _, secret := range []string{"kda_guess-f", testReader} {
		r := sendFrom(p, "/api/things/a", secret, attacker)
		if r.Code != 429 || !strings.Contains(r.Body.String(), `"reason":"rate_limited"`) || r.Header().Get("Retry-After") != "1" {
			t.Fatalf("over budget: %d %s Retry-After=%q", r.Code, r.Body, r.Header().Get("Retry-After"))
		}
	}
	if len(keys.calls) != 0 {
		t.Fatalf("the store was reached: %v", keys.calls)
	}
	if r := sendFrom(p, "/api/things/a", testReader, admin); r.Code != 200 {
		t.Fatalf("another address: %d %s", r.Code, r.Body)
	}
	// One record for the first failure, the others pending.
	recs := w.lines(t)
	if len(recs) != 2 || recs[0].Operation != "authenticate" || recs[0].Result != audit.Unauthorized || recs[0].Count != 1 ||
		recs[0].Source != "192.0.2.66" || recs[1].Operation != "t.read" {
		t.Fatalf("audit: %+v", recs)
	}
	c.advance(time.Second)
	if r := sendFrom(p, "/api/things/a", "kda_guess-g", attacker); r.Code != 401 {
		t.Fatalf("after the refill: %d", r.Code)
	}
	recs = w.lines(t)
	if len(recs) != 1 || recs[0].Count != 5 {
		t.Fatalf("the next record does not count the failures it stands for: %+v", recs)
	}
	if n := counted(t, reg, opAuthenticate, audit.Unauthorized); n != 6 {
		t.Errorf("authenticate:unauthorized counted %v times, want 6", n)
	}
}

// TestCredentialInQueryByValue (issue 12: "the admin request log records
// the admin secret for ?auth=<secret> and ?Authorization=Bearer%20<secret>
// (answered 401 missing_credential, not credential_in_query)").
func TestCredentialInQueryByValue(t *testing.T) {
	var log syncbuf.Buffer
	p, keys, w, _ := newTestPlaneWith(t, func(o *Options) { o.Log = slog.New(slog.NewJSONHandler(&log, nil)) })
	const secret = "kda_Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8"
	for _, q := range []string{
		"auth=" + secret,
		"Authorization=" + url.QueryEscape("Bearer "+secret),
		"purge=" + secret,
		secret,
		"x=" + url.QueryEscape("bearer="+"hand-chosen-secret"),
	} {
		for _, cred := range []string{"", testReader} {
			r := sendFrom(p, "/api/things/a?"+q, cred, "192.0.2.1:1")
			if r.Code != 400 || !strings.Contains(r.Body.String(), `"reason":"credential_in_query"`) {
				t.Errorf("?%s (credential %q): %d %s", q, cred, r.Code, r.Body)
			}
			if strings.Contains(r.Body.String(), "kda_Zm9v") {
				t.Errorf("the answer echoes the secret: %s", r.Body)
			}
		}
	}
	if len(keys.calls) != 0 {
		t.Fatalf("the store was reached: %v", keys.calls)
	}
	if strings.Contains(log.String(), "kda_Zm9v") || strings.Contains(w.buf.String(), "kda_Zm9v") {
		t.Fatalf("the secret reached the log or the audit log:\n%s\n%s", log.String(), w.buf.String())
	}
	if !strings.Contains(log.String(), "REDACTED") {
		t.Fatalf("the request log shows no redaction: %s", log.String())
	}
}
