package admin_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/admin"
	"github.com/keydelivery/keydelivery/admin/audit"
	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/internal/keystest"
	"github.com/keydelivery/keydelivery/keystore"
)

// TestCreateOnBoltStore creates keys through POST /api/keys over a real
// boltstore and reads them back through keystore.Keys.
func TestCreateOnBoltStore(t *testing.T) {
	keys := keystest.New(t, keystore.Options{})
	secret, err := credentials.GenerateSecret(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	credLine, err := credentials.Line("ops", credentials.RoleWriter, secret)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := credentials.Parse([]byte(credLine))
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	p, err := plane.New(plane.Options{
		Log:         slog.New(slog.DiscardHandler),
		Registerer:  prometheus.NewRegistry(),
		Keys:        keys,
		Credentials: creds,
		Audit:       audit.New(&log, nil),
		Checks:      []plane.Check{{Name: "store", Check: keys.Ping}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Register(p, admin.Options{}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)

	post := func(body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+"/api/keys", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return resp.StatusCode, m
	}

	const kid = "0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f"
	const key = "7lIBmBeF+EGDaguNx7EgQA=="
	status, m := post(`{"id":"nb:kid:UUID:` + kid + `","name":"imported","key":"` + key + `","iv":"AAECAwQFBgcICQoLDA0ODw=="}`)
	if status != 201 || m["id"] != kid || m["creationMethod"] != "Import" {
		t.Fatalf("import: %d %v", status, m)
	}
	id, _ := keystore.ParseKeyID(kid)
	got, err := keys.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if base64.StdEncoding.EncodeToString(got.Value[:]) != key || got.Name != "imported" || got.Method != keystore.CreatedImport ||
		got.Type != keystore.EnvelopeEncryption || len(got.IV) != 16 {
		t.Errorf("stored %+v", got)
	}

	// A stored key is never overwritten, whether or not the value matches.
	for _, body := range []string{
		`{"id":"` + kid + `","key":"` + key + `"}`,
		`{"id":"` + kid + `","key":"AAECAwQFBgcICQoLDA0ODw=="}`,
	} {
		status, m = post(body)
		if status != 409 || m["code"] != "conflict" || m["reason"] != "exists" || !strings.Contains(m["detail"].(string), kid) {
			t.Errorf("repeat: %d %v", status, m)
		}
	}
	if again, _ := keys.Get(context.Background(), id); again.Value != got.Value {
		t.Error("stored key changed")
	}

	status, m = post(`{"type":"CommonEncryption"}`)
	if status != 201 || m["creationMethod"] != "Random" || m["type"] != 0.0 {
		t.Fatalf("random: %d %v", status, m)
	}
	rid, _ := keystore.ParseKeyID(m["id"].(string))
	rk, err := keys.Get(context.Background(), rid)
	if err != nil || rk.Value == ([16]byte{}) || rk.Method != keystore.CreatedRandom {
		t.Errorf("random key %+v %v", rk, err)
	}
	if strings.Contains(log.String(), key) || strings.Contains(log.String(), secret) {
		t.Error("audit log holds key material or the secret")
	}

	resp, err := srv.Client().Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("readyz %d", resp.StatusCode)
	}
}
