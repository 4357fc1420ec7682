package admin

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/keydelivery/keydelivery/admin/amsapi"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/playready"
)

// The independent vector: this seed and KID derive this key, whose
// AMS checksum is vectorChecksum.
const (
	vectorSeed     = "XVBovsmzhP9gRIZxWfFta3VVRPzVEWmJsazEJ46I"
	vectorKID      = "0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f"
	vectorKey      = "7lIBmBeF+EGDaguNx7EgQA=="
	vectorChecksum = "jo5RgemjINw="
	seedID1        = "5b1d7a3e-2f4c-4e8a-9d6b-1c0e3f2a4b5d"
)

// KeySeed lets the fake store answer keySeedId lookups (always unknown), so
// FuzzCreateKeyBody cannot reach the nil embedded interface.
func (f *fakeKeys) KeySeed(_ context.Context, id keystore.KeyID) (keystore.KeySeed, error) {
	if f.err != nil {
		return keystore.KeySeed{}, f.err
	}
	return keystore.KeySeed{}, fmt.Errorf("%w: key seed %s", keystore.ErrNotFound, id)
}

// noSecrets fails the test if an answer, the log or the audit log holds
// any of secrets.
func noSecrets(t *testing.T, env *testEnv, body []byte, secrets ...string) {
	t.Helper()
	env.NoSecrets(t, body, secrets...)
}

// TestKeySeedDerivation derives the vector through both ways of
// naming a seed, over a real bbolt store, and reads the key back through
// keystore.Keys.
func TestKeySeedDerivation(t *testing.T) {
	for _, c := range []struct {
		name string
		body string
	}{
		{"stored seed", `{"id":"nb:kid:UUID:` + vectorKID + `","name":"from seed","keySeedId":"` + seedID1 + `"}`},
		{"stored seed, other ID spelling", `{"id":"` + vectorKID + `","name":"from seed","keySeedId":"{` + strings.ToUpper(seedID1) + `}"}`},
		{"inline seed", `{"id":"` + vectorKID + `","name":"from seed","keySeed":"` + vectorSeed + `"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, keys := newRealEnv(t, nil)
			if err := amsapi.Register(env.Plane, amsapi.Options{}); err != nil {
				t.Fatal(err)
			}
			r := env.do(t, "POST", "/api/keyseeds", secretAdmin, `{"id":"`+seedID1+`","name":"catalogue","seed":"`+vectorSeed+`"}`)
			if r.status != 201 {
				t.Fatalf("create seed: %d %s", r.status, r.body)
			}
			r = env.do(t, "POST", "/api/keys", secretWriter, c.body)
			if r.status != 201 {
				t.Fatalf("create key: %d %s", r.status, r.body)
			}
			var m keyMetadata
			r.json(t, &m)
			if m.ID != vectorKID || m.CreationMethod != "KeySeed" || m.Name != "from seed" {
				t.Errorf("metadata %+v", m)
			}
			id, _ := keystore.ParseKeyID(vectorKID)
			got, err := keys.Get(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if base64.StdEncoding.EncodeToString(got.Value[:]) != vectorKey || got.Method != keystore.CreatedKeySeed {
				t.Errorf("stored key %x method %v, want %s KeySeed", got.Value, got.Method, vectorKey)
			}
			// The AMS view recomputes the checksum from the stored key.
			r = env.do(t, "GET", "/api/ContentKeys('nb:kid:UUID:"+vectorKID+"')", secretReader, "")
			var e struct{ Checksum string }
			r.json(t, &e)
			if r.status != 200 || e.Checksum != vectorChecksum {
				t.Errorf("AMS checksum: %d %s, want %s", r.status, r.body, vectorChecksum)
			}
			noSecrets(t, env, r.body, vectorSeed, vectorKey)
			if got := auditOperations(t, env); !strings.Contains(got, "keyseeds.create:started,keyseeds.create:ok,keys.create:started,keys.create:ok") {
				t.Errorf("audit %s", got)
			}
		})
	}
}

// auditOperations is the audit log as "operation:result,...".
func auditOperations(t *testing.T, env *testEnv) string { return env.AuditOperations(t) }

func TestKeySeedRoutes(t *testing.T) {
	env, keys := newRealEnv(t, nil)
	r := env.do(t, "POST", "/api/keyseeds", secretAdmin, `{"id":"nb:kid:UUID:`+strings.ToUpper(seedID1)+`","name":"catalogue","seed":"`+vectorSeed+`"}`)
	if r.status != 201 || r.header.Get("Location") != "/api/keyseeds/"+seedID1 {
		t.Fatalf("create: %d %v %s", r.status, r.header, r.body)
	}
	var m map[string]any
	r.json(t, &m)
	if len(m) != 3 || m["id"] != seedID1 || m["name"] != "catalogue" || m["created"] == nil {
		t.Errorf("answer %s", r.body)
	}
	// A random seed with a random ID.
	r = env.do(t, "POST", "/api/keyseeds", secretAdmin, "")
	if r.status != 201 {
		t.Fatalf("random: %d %s", r.status, r.body)
	}
	var random keySeedMetadata
	r.json(t, &random)
	rid, err := keystore.ParseKeyID(random.ID)
	if err != nil || rid[6]>>4 != 4 {
		t.Errorf("random seed ID %q is not a UUIDv4", random.ID)
	}
	stored, err := keys.KeySeed(context.Background(), rid)
	if err != nil || len(stored.Seed) != playready.SeedSize || string(stored.Seed) == string(make([]byte, playready.SeedSize)) {
		t.Errorf("random seed stored as %x (%v)", stored.Seed, err)
	}

	// An ID that is taken: 409, the stored seed untouched.
	r = env.do(t, "POST", "/api/keyseeds", secretAdmin, `{"id":"`+seedID1+`","seed":"`+base64.StdEncoding.EncodeToString([]byte("another seed, thirty bytes lng"))+`"}`)
	if p := r.problem(t); r.status != 409 || p.Code != codeConflict || p.Reason != reasonExists || !strings.Contains(p.Detail, seedID1) {
		t.Errorf("duplicate: %d %s", r.status, r.body)
	}
	sid, _ := keystore.ParseKeyID(seedID1)
	if s, _ := keys.KeySeed(context.Background(), sid); base64.StdEncoding.EncodeToString(s.Seed) != vectorSeed {
		t.Error("the stored seed changed")
	}

	r = env.do(t, "GET", "/api/keyseeds", secretReader, "")
	var list struct {
		KeySeeds []map[string]any `json:"keySeeds"`
	}
	r.json(t, &list)
	if r.status != 200 || len(list.KeySeeds) != 2 {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	for _, s := range list.KeySeeds {
		if len(s) != 3 {
			t.Errorf("list entry %v", s)
		}
	}
	r = env.do(t, "GET", "/api/keyseeds/%7B"+seedID1+"%7D", secretReader, "")
	if r.status != 200 || !strings.Contains(string(r.body), `"name":"catalogue"`) {
		t.Errorf("get: %d %s", r.status, r.body)
	}
	r = env.do(t, "GET", "/api/keyseeds/"+kid1, secretReader, "")
	if p := r.problem(t); r.status != 404 || p.Code != codeNotFound || p.Reason != reasonUnknownKeySeed {
		t.Errorf("get unknown: %d %s", r.status, r.body)
	}
	r = env.do(t, "GET", "/api/keyseeds/nope", secretReader, "")
	if p := r.problem(t); r.status != 400 || p.Reason != reasonInvalidKID {
		t.Errorf("get bad ID: %d %s", r.status, r.body)
	}
	noSecrets(t, env, nil, vectorSeed)

	// Only an admin stores a seed.
	for _, secret := range []string{secretReader, secretWriter, secretExporter} {
		r = env.do(t, "POST", "/api/keyseeds", secret, `{"seed":"`+vectorSeed+`"}`)
		if p := r.problem(t); r.status != 403 || p.Reason != reasonRole {
			t.Errorf("non-admin create: %d %s", r.status, r.body)
		}
	}
	if seeds, _ := keys.KeySeeds(context.Background()); len(seeds) != 2 {
		t.Errorf("%d seeds stored, want 2", len(seeds))
	}
}

// TestKeySeedRefusals: bad seed bodies and bad seed references in
// POST /api/keys; nothing is stored.
func TestKeySeedRefusals(t *testing.T) {
	env, keys := newRealEnv(t, nil)
	zero := base64.StdEncoding.EncodeToString(make([]byte, 30))
	for _, c := range []struct {
		name, path, body, reason string
	}{
		{"29-byte seed", "/api/keyseeds", `{"seed":"` + base64.StdEncoding.EncodeToString(make([]byte, 29)) + `"}`, "invalid_seed"},
		{"31-byte seed", "/api/keyseeds", `{"seed":"` + base64.StdEncoding.EncodeToString(make([]byte, 31)) + `"}`, "invalid_seed"},
		{"seed with a line break", "/api/keyseeds", `{"seed":"` + vectorSeed[:20] + `\n` + vectorSeed[20:] + `"}`, "invalid_seed"},
		{"url-safe seed", "/api/keyseeds", `{"seed":"` + base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe, 27: 1, 29: 0}) + `"}`, "invalid_seed"},
		{"all-zero seed", "/api/keyseeds", `{"seed":"` + zero + `"}`, "invalid_seed"},
		{"seed as number", "/api/keyseeds", `{"seed":5}`, "invalid_seed"},
		{"bad seed ID", "/api/keyseeds", `{"id":"seed-1"}`, reasonInvalidKID},
		{"unknown seed field", "/api/keyseeds", `{"Seed":"` + vectorSeed + `"}`, "unknown_field"},
		{"long seed name", "/api/keyseeds", `{"name":"` + strings.Repeat("n", 257) + `"}`, "invalid_name"},
		{"unknown keySeedId", "/api/keys", `{"keySeedId":"` + seedID1 + `"}`, reasonUnknownKeySeed},
		{"bad keySeedId", "/api/keys", `{"keySeedId":"seed-1"}`, "invalid_keySeedId"},
		{"key and keySeedId", "/api/keys", `{"key":"` + keyB64 + `","keySeedId":"` + seedID1 + `"}`, "conflicting_fields"},
		{"key and keySeed", "/api/keys", `{"key":"` + keyB64 + `","keySeed":"` + vectorSeed + `"}`, "conflicting_fields"},
		{"keySeedId and keySeed", "/api/keys", `{"keySeedId":"` + seedID1 + `","keySeed":"` + vectorSeed + `"}`, "conflicting_fields"},
		{"short inline seed", "/api/keys", `{"keySeed":"` + vectorSeed[:36] + `"}`, "invalid_keySeed"},
		{"all-zero inline seed", "/api/keys", `{"keySeed":"` + zero + `"}`, "invalid_keySeed"},
	} {
		secret := secretWriter
		if c.path == "/api/keyseeds" {
			secret = secretAdmin
		}
		r := env.do(t, "POST", c.path, secret, c.body)
		if r.status != 400 {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
			continue
		}
		if p := r.problem(t); p.Reason != c.reason || p.Code != codeInvalidRequest {
			t.Errorf("%s: reason %q, want %q (%s)", c.name, p.Reason, c.reason, r.body)
		}
	}
	if seeds, err := keys.KeySeeds(context.Background()); err != nil || len(seeds) != 0 {
		t.Errorf("refused requests stored %d seeds (%v)", len(seeds), err)
	}
	if ks, err := keys.List(context.Background(), keystore.KeyID{}, 10); err != nil || len(ks) != 0 {
		t.Errorf("refused requests stored %d keys (%v)", len(ks), err)
	}
	noSecrets(t, env, nil, vectorSeed)
}

// TestKeySeedStoreDown: a store failure while reading the seed is 503, not
// a 400 about the seed.
func TestKeySeedStoreDown(t *testing.T) {
	env := newEnv(t, nil)
	env.keys.err = fmt.Errorf("%w: down", keystore.ErrUnavailable)
	r := env.do(t, "POST", "/api/keys", secretWriter, `{"keySeedId":"`+seedID1+`"}`)
	if p := r.problem(t); r.status != 503 || p.Reason != reasonStore {
		t.Errorf("%d %s", r.status, r.body)
	}
	if env.keys.creates != 0 {
		t.Error("a key was created")
	}
}
