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
func BenchmarkKeyEndpoint(b *testing.B) { benchKeyEndpoint(b, false) }

// BenchmarkKeyEndpointCached is the same with the verified-token cache and
// the key cache: the path a player's repeated requests take.
func BenchmarkKeyEndpointCached(b *testing.B) { benchKeyEndpoint(b, true) }

// BenchmarkKeyEndpointCachedLimited is the cached path with the budget of
// failed verifications on, as the server runs by default
// (--limit-auth-failures): one budget lookup per request.
func BenchmarkKeyEndpointCachedLimited(b *testing.B) {
	benchKeyEndpoint(b, true, func(o *Options) { o.AuthFailures = ratelimit.Limit{Rate: 20, Burst: 40} })
}

func benchKeyEndpoint(b *testing.B, cached bool, mod ...func(*Options)) {
	m := authtest.New(b, auth.Options{})
	v := m.Verifier
	id := keystore.KeyID{0x0a, 0x4f, 0x6e, 0x08}
	tok := m.Token(b, id.String())
	var err error
	var (
		ver  verifier  = v
		keys keySource = mapKeys{id: {ID: id}}
	)
	if cached {
		if ver, err = auth.NewCachedVerifier(v, 1024, nil); err != nil {
			b.Fatal(err)
		}
		if keys, err = keystore.NewCache(keys, keystore.CacheOptions{TTL: time.Hour, Size: 1024}); err != nil {
			b.Fatal(err)
		}
	}
	o := Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Verifier: ver,
		Keys: keys, Registerer: prometheus.NewRegistry()}
	for _, f := range mod {
		f(&o)
	}
	h, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/keys/"+id.String(), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
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
