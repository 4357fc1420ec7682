package admin

import (
	"context"
	"encoding/base64"
	"os"
	"strings"
	"testing"

	"github.com/keydelivery/keydelivery/internal/keystest"
	"github.com/keydelivery/keydelivery/keystore"
)

// newRealEnv is newEnv over the real keystore on a real bbolt file.
func newRealEnv(t *testing.T, mod func(*testOptions)) (*testEnv, *keystore.Keys) {
	t.Helper()
	keys := keystest.New(t, keystore.Options{})
	env := newEnv(t, func(o *testOptions) {
		o.Keys = keys
		o.PublicURL = "https://keys.example.com/"
		if mod != nil {
			mod(o)
		}
	})
	return env, keys
}

const (
	seedKID1 = "d83cb192-1135-4c4e-9267-120b0d762856"
	seedKID2 = "9d8d2d6a-ec64-40d2-ab4d-f12f17aeeeeb"
)

func TestImportJSON(t *testing.T) {
	env, keys := newRealEnv(t, nil)
	k1 := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	k2 := base64.StdEncoding.EncodeToString([]byte("fedcba9876543210"))
	iv := base64.StdEncoding.EncodeToString(make([]byte, 16))
	body := `[{"Id":"` + seedKID1 + `","Data":"` + k1 + `","Iv":"` + iv + `"},{"Data":"` + k2 + `"}]`
	r := env.do(t, "POST", "/api/keys/import", secretWriter, body)
	if r.status != 200 {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	var out []importedKey
	r.json(t, &out)
	if len(out) != 2 || out[0].ID != seedKID1 || out[0].Status != "created" || out[0].CreationMethod != 2 || out[1].ID == "" || out[1].Created == "" {
		t.Fatalf("answer %s", r.body)
	}
	if strings.Contains(string(r.body), k1) || strings.Contains(string(r.body), k2) {
		t.Fatal("the answer holds key material")
	}
	id, _ := keystore.ParseKeyID(seedKID1)
	got, err := keys.Get(context.Background(), id)
	if err != nil || string(got.Value[:]) != "0123456789abcdef" || len(got.IV) != 16 || got.Method != keystore.CreatedImport {
		t.Fatalf("stored %+v %v", got, err)
	}
	// The same again through the seed's path: unchanged, idempotent.
	r = env.do(t, "POST", "/api/Import/ContentKeys", secretWriter, `[{"Id":"`+seedKID1+`","Data":"`+k1+`"}]`, "Content-Type", "text/json")
	if r.status != 200 || !strings.Contains(string(r.body), `"Status":"unchanged"`) {
		t.Fatalf("re-import: %d %s", r.status, r.body)
	}
	// The same key asking for another content key type: the type cannot
	// change, so it is a conflict, not a silent "unchanged".
	r = env.do(t, "POST", "/api/keys/import?type=0", secretWriter, `[{"Id":"`+seedKID1+`","Data":"`+k1+`"}]`)
	if p := r.problem(t); r.status != 409 || len(p.Conflicts) != 1 || p.Conflicts[0] != seedKID1 || !strings.Contains(p.Detail, "type") {
		t.Fatalf("re-import with another type: %d %s", r.status, r.body)
	}
	if got, _ := keys.Get(context.Background(), id); got.Type != keystore.EnvelopeEncryption {
		t.Fatalf("the type changed to %v", got.Type)
	}
	// Another key under the same KID: 409 naming it, stored key untouched;
	// the other key of the batch is imported.
	other := base64.StdEncoding.EncodeToString([]byte("XXXXXXXXXXXXXXXX"))
	r = env.do(t, "POST", "/api/keys/import", secretWriter, `[{"Id":"`+seedKID1+`","Data":"`+other+`"},{"Id":"`+seedKID2+`","Data":"`+k2+`"}]`)
	p := r.problem(t)
	var results struct {
		Results []importedKey `json:"results"`
	}
	r.json(t, &results)
	if r.status != 409 || p.Reason != "key_conflict" || len(p.Conflicts) != 1 || p.Conflicts[0] != seedKID1 || len(results.Results) != 2 || results.Results[1].Status != "created" {
		t.Fatalf("conflict: %d %s", r.status, r.body)
	}
	if got, _ := keys.Get(context.Background(), id); string(got.Value[:]) != "0123456789abcdef" {
		t.Fatal("a conflicting import overwrote the stored key")
	}
	// A reader may not import.
	if r := env.do(t, "POST", "/api/keys/import", secretReader, body); r.status != 403 {
		t.Fatalf("reader import: %d", r.status)
	}
}

// TestImportJSONRefusals: every bad entry is named, and nothing is written.
func TestImportJSONRefusals(t *testing.T) {
	env, keys := newRealEnv(t, nil)
	good := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	// "AAAAAAAAAAAAAAAAAAAAAB==" decodes to the same 16 bytes as the
	// canonical "AAAAAAAAAAAAAAAAAAAAAA==": non-canonical, refused.
	cases := map[string]struct {
		body    string
		reasons []string
	}{
		"seed example (2-byte Data, repeated Id)": {
			`[{"Id":"22981a47-38dd-43ae-ae04-670b59d29bf7","Data":"QEA=","Iv":"QEA="},{"Id":"22981a47-38dd-43ae-ae04-670b59d29bf7","Data":"QEA=","Iv":"QEA="}]`,
			[]string{"invalid_data", "invalid_iv", "invalid_data", "invalid_iv"}},
		"duplicate KIDs in other spellings": {
			`[{"Id":"` + seedKID1 + `","Data":"` + good + `"},{"Id":"{` + strings.ToUpper(seedKID1) + `}","Data":"` + good + `"}]`,
			[]string{"duplicate_kid"}},
		"non-canonical base64": {`[{"Data":"AAAAAAAAAAAAAAAAAAAAAB=="}]`, []string{"invalid_data"}},
		"bad base64":           {`[{"Data":"!!!!AAAAAAAAAAAAAAAAAA=="}]`, []string{"invalid_data"}},
		"17 bytes":             {`[{"Data":"` + base64.StdEncoding.EncodeToString(make([]byte, 17)) + `"}]`, []string{"invalid_data"}},
		"missing Data":         {`[{"Id":"` + seedKID1 + `"}]`, []string{"missing_data"}},
		"bad KID":              {`[{"Id":"not-a-kid","Data":"` + good + `"}]`, []string{"invalid_kid"}},
		"unknown field":        {`[{"Data":"` + good + `","Key":"x"}]`, []string{"invalid_entry"}},
		"good then bad":        {`[{"Id":"` + seedKID2 + `","Data":"` + good + `"},{"Data":"QEA="}]`, []string{"invalid_data"}},
	}
	for name, c := range cases {
		r := env.do(t, "POST", "/api/keys/import", secretWriter, c.body)
		if r.status != 400 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
			continue
		}
		p := r.problem(t)
		var got []string
		for _, e := range p.Problems {
			got = append(got, e.Reason)
		}
		if strings.Join(got, ",") != strings.Join(c.reasons, ",") {
			t.Errorf("%s: problems %v, want %v", name, got, c.reasons)
		}
		if strings.Contains(string(r.body), good) {
			t.Errorf("%s: the answer quotes key material", name)
		}
	}
	if ks, err := keys.List(context.Background(), keystore.KeyID{}, 10); err != nil || len(ks) != 0 {
		t.Fatalf("refused imports wrote %d keys (%v)", len(ks), err)
	}
	for _, bad := range []string{`{}`, `[]`, `not json`} {
		if r := env.do(t, "POST", "/api/keys/import", secretWriter, bad); r.status != 400 {
			t.Errorf("body %q: %d", bad, r.status)
		}
	}
	if r := env.do(t, "POST", "/api/keys/import", secretWriter, "x", "Content-Type", "text/plain"); r.status != 415 {
		t.Errorf("text/plain: %d", r.status)
	}
}

func TestImportCPIXSeedAndExportRoundTrip(t *testing.T) {
	env, keys := newRealEnv(t, nil)
	seed, err := os.ReadFile("../cpix/testdata/seed-002.xml")
	if err != nil {
		t.Fatal(err)
	}
	r := env.do(t, "POST", "/api/keys/import", secretWriter, string(seed), "Content-Type", "application/xml")
	if r.status != 200 || !strings.Contains(string(r.body), seedKID1) || !strings.Contains(string(r.body), seedKID2) {
		t.Fatalf("seed CPIX import: %d %s", r.status, r.body)
	}
	// Random keys in, CPIX out, CPIX in again elsewhere: byte for byte.
	r = env.do(t, "POST", "/api/keys", secretWriter, `{"iv":"AAECAwQFBgcICQoLDA0ODw=="}`)
	var meta keyMetadata
	r.json(t, &meta)
	id, _ := keystore.ParseKeyID(meta.ID)
	want, err := keys.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if r := env.do(t, "POST", "/api/keys/export", secretWriter, `{"kids":["`+meta.ID+`"]}`); r.status != 403 {
		t.Fatalf("writer export: %d", r.status)
	}
	r = env.do(t, "POST", "/api/keys/export", secretExporter, `{"kids":["`+meta.ID+`","`+seedKID1+`"]}`)
	if r.status != 200 || r.header.Get("Content-Type") != "application/cpix+xml" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("export: %d %v %s", r.status, r.header, r.body)
	}
	other, otherKeys := newRealEnv(t, nil)
	r2 := other.do(t, "POST", "/api/keys/import", secretWriter, string(r.body), "Content-Type", "application/cpix+xml")
	if r2.status != 200 {
		t.Fatalf("re-import of the export: %d %s", r2.status, r2.body)
	}
	got, err := otherKeys.Get(context.Background(), id)
	if err != nil || got.Value != want.Value || string(got.IV) != string(want.IV) {
		t.Fatalf("round trip: %v", err)
	}
	if r := env.do(t, "POST", "/api/keys/export", secretExporter, `{"kids":["0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f"]}`); r.status != 404 || r.problem(t).KID != "0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f" {
		t.Fatalf("export of an unknown key: %d %s", r.status, r.body)
	}
	if strings.Contains(env.audit.String(), base64.StdEncoding.EncodeToString(want.Value[:])) {
		t.Fatal("the audit log holds key material")
	}
}

func TestDeleteRestorePurgeListAssets(t *testing.T) {
	env, keys := newRealEnv(t, nil)
	var ids []string
	for i := range 5 {
		body := `{"name":"k","assets":["movie-1"]}`
		if i%2 == 1 {
			body = `{"assets":["movie-2"]}`
		}
		r := env.do(t, "POST", "/api/keys", secretWriter, body)
		var m keyMetadata
		r.json(t, &m)
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		ids = append(ids, m.ID)
	}
	// Paging through every key.
	var listed []string
	cursor := ""
	for range 10 {
		r := env.do(t, "GET", "/api/keys?limit=2&cursor="+cursor, secretReader, "")
		var page keyPage
		r.json(t, &page)
		for _, k := range page.Keys {
			listed = append(listed, k.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if len(listed) != 5 {
		t.Fatalf("listed %v", listed)
	}
	r := env.do(t, "GET", "/api/assets/movie-1/keys", secretReader, "")
	var page keyPage
	r.json(t, &page)
	if r.status != 200 || len(page.Keys) != 3 || page.Keys[0].Assets[0] != "movie-1" {
		t.Fatalf("asset keys: %d %s", r.status, r.body)
	}
	for _, q := range []string{"limit=0", "limit=1001", "cursor=zz"} {
		if r := env.do(t, "GET", "/api/keys?"+q, secretReader, ""); r.status != 400 {
			t.Errorf("%s: %d", q, r.status)
		}
	}

	kid := ids[0]
	id, _ := keystore.ParseKeyID(kid)
	if r := env.do(t, "DELETE", "/api/keys/"+kid+"?purge=true", secretAdmin, ""); r.status != 409 || r.problem(t).Reason != "not_deleted" {
		t.Fatalf("purge of a live key: %d %s", r.status, r.body)
	}
	if r := env.do(t, "DELETE", "/api/keys/"+kid, secretReader, ""); r.status != 403 {
		t.Fatalf("reader delete: %d", r.status)
	}
	r = env.do(t, "DELETE", "/api/keys/"+kid, secretWriter, "")
	var m keyMetadata
	r.json(t, &m)
	if r.status != 200 || m.DeletedAt == nil {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if _, err := keys.Get(context.Background(), id); err == nil {
		t.Fatal("a deleted key is still delivered")
	}
	if r := env.do(t, "POST", "/api/keys/"+kid+"/restore", secretWriter, ""); r.status != 200 {
		t.Fatalf("restore: %d %s", r.status, r.body)
	}
	if _, err := keys.Get(context.Background(), id); err != nil {
		t.Fatalf("restored key: %v", err)
	}
	if r := env.do(t, "POST", "/api/keys/"+kid+"/restore", secretWriter, ""); r.status != 409 {
		t.Fatalf("restore of a live key: %d", r.status)
	}
	env.do(t, "DELETE", "/api/keys/"+kid, secretWriter, "")
	if r := env.do(t, "DELETE", "/api/keys/"+kid+"?purge=true", secretWriter, ""); r.status != 403 {
		t.Fatalf("writer purge: %d", r.status)
	}
	if r := env.do(t, "DELETE", "/api/keys/"+kid+"?purge=true", secretAdmin, ""); r.status != 204 {
		t.Fatalf("purge: %d %s", r.status, r.body)
	}
	if r := env.do(t, "GET", "/api/keys/"+kid, secretReader, ""); r.status != 404 {
		t.Fatalf("after purge: %d", r.status)
	}
	if !strings.Contains(env.audit.String(), `"operation":"keys.purge"`) {
		t.Fatal("purge not audited")
	}

	// Delivery URLs.
	r = env.do(t, "GET", "/api/keys/"+ids[1]+"/delivery-url", secretReader, "")
	if r.status != 200 || !strings.Contains(string(r.body), `"url":"https://keys.example.com/keys/`+ids[1]+`"`) {
		t.Fatalf("delivery-url: %d %s", r.status, r.body)
	}
	r = env.do(t, "GET", "/api/keys/"+ids[1]+"/delivery-url?type=clearkey", secretReader, "")
	if r.status != 200 || !strings.Contains(string(r.body), "https://keys.example.com/clearkey/license") {
		t.Fatalf("delivery-url clearkey: %d %s", r.status, r.body)
	}
	if r := env.do(t, "GET", "/api/keys/"+ids[1]+"/delivery-url?type=smoke", secretReader, ""); r.status != 400 {
		t.Fatalf("delivery-url bad type: %d", r.status)
	}
}
