package delivery

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/auth"
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
// extract the token, verify it (ES256, every request: there is no token
// cache yet), check the grant, look the key up, write 16 bytes.
func BenchmarkKeyEndpoint(b *testing.B) {
	dir := b.TempDir()
	certPEM, keyPEM, err := auth.GenerateDevCertificate(rand.Reader, "bench", time.Now(), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		b.Fatal(err)
	}
	trust, err := auth.NewTrust([]string{certFile}, nil)
	if err != nil {
		b.Fatal(err)
	}
	v, err := auth.NewVerifier(trust, auth.Options{Issuers: []string{"i"}, Audience: "a",
		ParseKeyID: func(s string) ([16]byte, error) { return keystore.ParseKeyID(s) }})
	if err != nil {
		b.Fatal(err)
	}
	signer, err := auth.LoadSigner(keyFile, certFile)
	if err != nil {
		b.Fatal(err)
	}
	id := keystore.KeyID{0x0a, 0x4f, 0x6e, 0x08}
	tok, err := signer.Sign(auth.TokenClaims{Issuer: "i", Audience: "a", KeyIDs: []string{id.String()}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	h, err := New(Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Verifier: v,
		Keys: mapKeys{id: {ID: id}}, Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/keys/"+id.String(), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// BenchmarkBareEcho16 is the baseline: an echo handler that writes 16
// bytes, with nothing else. Compare BenchmarkKeyEndpoint against it in the
// same run.
func BenchmarkBareEcho16(b *testing.B) {
	e := echo.New()
	body := make([]byte, 16)
	e.GET("/keys/:kid", func(c echo.Context) error { return c.Blob(http.StatusOK, echo.MIMEOctetStream, body) })
	req := httptest.NewRequest("GET", "/keys/0a4f6e08-0000-0000-0000-000000000000", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
	}
}
