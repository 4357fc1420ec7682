package delivery

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/authtest"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/internal/ratelimit"
	"github.com/keydelivery/keydelivery/keystore"
)

// mapKeys is an in-memory key source, so the benchmark measures the HTTP
// edge and token verification, not a store.
type mapKeys map[keystore.KeyID]keystore.Key

func (m mapKeys) Get(_ context.Context, id keystore.KeyID) (keystore.Key, error) {
	if k, ok := m[id]; ok {
		return k, nil
	}
	return keystore.Key{}, keystore.ErrNotFound
}

// BenchmarkKeyEndpoint is the whole delivery hot path in process: route,
// extract the token, verify it (ES256 on every request: no token cache),
// check the grant, look the key up, write 16 bytes.
func BenchmarkKeyEndpoint(b *testing.B) { benchKeyEndpoint(b, false, false) }

// BenchmarkKeyEndpointCached is the same with the verified-token cache and
// the key cache: the path a player's repeated requests take.
func BenchmarkKeyEndpointCached(b *testing.B) { benchKeyEndpoint(b, true, false) }

// BenchmarkKeyEndpointCachedContent is the cached path with a token that
// grants the key by content (content_ids) rather than by KID: the grant is
// checked against the cached key's assets, after the lookup.
func BenchmarkKeyEndpointCachedContent(b *testing.B) { benchKeyEndpoint(b, true, true) }

// BenchmarkKeyEndpointCachedLimited is the cached path with the budget of
// failed verifications on, as the server runs by default
// (--limit-auth-failures): one budget lookup per request.
func BenchmarkKeyEndpointCachedLimited(b *testing.B) {
	benchKeyEndpoint(b, true, false, func(o *Options) { o.AuthFailures = ratelimit.Limit{Rate: 20, Burst: 40} })
}

func benchKeyEndpoint(b *testing.B, cached, content bool, mod ...func(*Options)) {
	h, req := hotPath(b, cached, content, mod...)
	w := &benchWriter{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		h.ServeHTTP(w, req)
		if w.code != 200 || w.n != 16 {
			b.Fatalf("status %d, %d bytes", w.code, w.n)
		}
	}
}

// hotPath builds the delivery plane over an in-memory key source and the
// request of a player for its key: with a token granting the key by KID,
// or by content (content_ids, the key recorded under one of them); through
// the verified-token cache and the key cache when cached.
func hotPath(tb testing.TB, cached, content bool, mod ...func(*Options)) (http.Handler, *http.Request) {
	m := authtest.New(tb, auth.Options{})
	v := m.Verifier
	id := keystore.KeyID{0x0a, 0x4f, 0x6e, 0x08}
	tok := m.Token(tb, id.String())
	if content {
		var err error
		tok, err = m.Signer.Sign(auth.TokenClaims{Issuer: "iss", Audience: "aud", ContentIDs: []string{"vod-1", "live-1"},
			ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			tb.Fatal(err)
		}
	}
	var err error
	var (
		ver  verifier  = v
		keys keySource = mapKeys{id: {ID: id, Assets: []string{"live-1"}}}
	)
	if cached {
		if ver, err = auth.NewCachedVerifier(v, 1024, nil); err != nil {
			tb.Fatal(err)
		}
		if keys, err = keystore.NewCache(keys, keystore.CacheOptions{TTL: time.Hour, Size: 1024}); err != nil {
			tb.Fatal(err)
		}
	}
	o := Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Verifier: ver,
		Keys: keys, Registerer: prometheus.NewRegistry()}
	for _, f := range mod {
		f(&o)
	}
	h, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/keys/"+id.String(), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	return h, req
}

// TestHotPathAllocations: a player's repeated key request, answered from
// the verified-token cache and the key cache, allocates no more than a
// bare echo handler writing the same 16 bytes (echo's one allocation),
// whether its token grants the key by KID or by content: the token cache
// and the grant checks allocate nothing.
//
// The race detector changes allocation counts, so the check runs without
// it: scripts/test.sh runs it in a stage of its own.
func TestHotPathAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are checked without -race (scripts/test.sh: stage \"allocations\")")
	}
	e := echo.New()
	body := make([]byte, 16)
	e.GET("/keys/:kid", func(c echo.Context) error {
		httpedge.SetNoStore(c.Response().Header())
		return c.Blob(http.StatusOK, echo.MIMEOctetStream, body)
	})
	measure := func(h http.Handler, req *http.Request) float64 {
		w := &benchWriter{header: http.Header{}}
		h.ServeHTTP(w, req) // fill the caches
		return testing.AllocsPerRun(200, func() {
			w.reset()
			h.ServeHTTP(w, req)
			if w.code != 200 || w.n != 16 {
				t.Fatalf("status %d, %d bytes", w.code, w.n)
			}
		})
	}
	bare := measure(e, httptest.NewRequest("GET", "/keys/0a4f6e08-0000-0000-0000-000000000000", nil))
	for name, content := range map[string]bool{"kids": false, "content_ids": true} {
		if n := measure(hotPath(t, true, content)); n > bare {
			t.Errorf("a token granting by %s: %v allocations per request, bare echo %v", name, n, bare)
		}
	}
}

// benchWriter is a ResponseWriter that keeps nothing, so the benchmarks
// measure the handler rather than a recorder (httptest.ResponseRecorder
// clones every header map).
type benchWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *benchWriter) Header() http.Header { return w.header }
func (w *benchWriter) WriteHeader(code int) {
	w.code = code
}
func (w *benchWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	w.n += len(p)
	return len(p), nil
}
func (w *benchWriter) reset() { clear(w.header); w.code, w.n = 0, 0 }

// BenchmarkBareEcho16 is the baseline: an echo handler that writes the
// same answer (16 bytes with Content-Type, Content-Length and
// Cache-Control), and does nothing else. Compare the key endpoint against
// it in the same run.
func BenchmarkBareEcho16(b *testing.B) {
	e := echo.New()
	body := make([]byte, 16)
	e.GET("/keys/:kid", func(c echo.Context) error {
		h := c.Response().Header()
		httpedge.SetNoStore(h)
		h[echo.HeaderContentLength] = sixteen
		return c.Blob(http.StatusOK, echo.MIMEOctetStream, body)
	})
	req := httptest.NewRequest("GET", "/keys/0a4f6e08-0000-0000-0000-000000000000", nil)
	w := &benchWriter{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		e.ServeHTTP(w, req)
		if w.code != 200 || w.n != 16 {
			b.Fatalf("status %d", w.code)
		}
	}
}
