package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/redistest"
	"github.com/keydelivery/keydelivery/keystore"
)

// The tests of an operator's first day (issue 15): each is one of the
// mistakes a new operator made, through run, as the program runs.

// runOnce runs the server with args until it returns (a refusal, or
// --check-config, --help, --version) and returns its error and output.
func runOnce(t *testing.T, args []string, env map[string]string, environ ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb syncBuffer
	getenv := func(k string) string { return env[k] }
	err = run(t.Context(), args, getenv, &out, &errb, environ...)
	return out.String(), errb.String(), err
}

// A mistyped bolt path is refused instead of silently starting on a new,
// empty store; --create-store makes it, and the new store is logged once.
func TestMistypedBoltPathRefused(t *testing.T) {
	m := newMaterial(t)
	dir := filepath.Join(m.dir, "nonexistent", "dir")
	store := "bolt:" + filepath.Join(dir, "keys.db")
	for _, extra := range [][]string{nil, {"--check-config"}} {
		_, _, err := runOnce(t, m.args(store, extra...), nil)
		if err == nil || !strings.Contains(err.Error(), "the directory "+dir+" does not exist") || !strings.Contains(err.Error(), "--create-store") {
			t.Fatalf("%v: %v", extra, err)
		}
	}
	if _, err := os.Stat(filepath.Join(m.dir, "nonexistent")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused start created the directory: %v", err)
	}
	// The default store under a --data-dir that does not exist: the same.
	_, _, err := runOnce(t, append(m.args(""), "--data-dir", filepath.Join(m.dir, "nodata")), nil)
	if err == nil || !strings.Contains(err.Error(), "under --data-dir") {
		t.Fatalf("default store under a missing --data-dir: %v", err)
	}

	s := start(t, m.args(store, "--create-store"), nil)
	newStore := `"level":"WARN","msg":"the store is new and empty`
	if log := s.stderr.String(); strings.Count(log, newStore) != 1 || !strings.Contains(log, `"store":"`+store+`"`) {
		t.Errorf("a new store is not logged once with its path:\n%s", log)
	}
	s.stop(t)
	s = start(t, m.args(store), nil)
	if strings.Contains(s.stderr.String(), newStore) {
		t.Errorf("the second start warns of a new store:\n%s", s.stderr.String())
	}
}

// --check-config runs what startup runs: a bad CORS origin, a KEK that is
// not the store's, a KEK file lacking the store's KEK and a store held by a
// running server all fail it; it writes nothing to the store.
func TestCheckConfigRunsStartupChecks(t *testing.T) {
	m := newMaterial(t)
	dbPath := filepath.Join(m.dir, "keys.db")
	store := "bolt:" + dbPath

	// Not an origin: refused by check-config as by startup.
	for _, extra := range [][]string{{"--check-config"}, nil} {
		stdout, _, err := runOnce(t, m.args(store, append(extra, "--cors-origins", "player.example.com")...), nil)
		if err == nil || !strings.Contains(err.Error(), "--cors-origins") || !strings.Contains(err.Error(), "player.example.com") || strings.Contains(stdout, "configuration ok") {
			t.Fatalf("cors %v: %v %q", extra, err, stdout)
		}
	}

	// A store with a key, then the server stopped.
	s := start(t, m.args(store), nil)
	kid := s.createKey(t, randomKey(t), nil)
	// While the server runs, check-config cannot read the bolt file: it
	// says so, within the lock timeout, instead of hanging.
	_, _, err := runOnce(t, append(m.args(store), "--check-config"), nil)
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("check-config beside a running server: %v", err)
	}
	s.stop(t)
	before, _ := os.ReadFile(dbPath)

	stdout, _, err := runOnce(t, append(m.args(store), "--check-config"), nil)
	if err != nil || !strings.Contains(stdout, "configuration ok") || !strings.Contains(stdout, "KEKs it recorded: e2e-1") ||
		!strings.Contains(stdout, "admin credentials:   1 (1 admin)") || !strings.Contains(stdout, "1 trusted, 1 valid now") || strings.Contains(stdout, "warning:") {
		t.Fatalf("check-config: %v\n%s", err, stdout)
	}

	// The same KEK ID with other bytes: refused, as startup refuses.
	good, _ := os.ReadFile(m.kekFile)
	other, _ := keystore.GenerateKEKLine(rand.Reader, "e2e-1")
	writeKEK := func(lines ...string) {
		t.Helper()
		if err := os.WriteFile(m.kekFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeKEK(other)
	for _, extra := range [][]string{{"--check-config"}, nil} {
		stdout, _, err := runOnce(t, m.args(store, extra...), nil)
		if err == nil || !strings.Contains(err.Error(), `kek "e2e-1" is not the key-encryption key this store was written with`) || strings.Contains(stdout, "configuration ok") {
			t.Fatalf("wrong KEK %v: %v", extra, err)
		}
	}
	// A KEK file whose only line has another ID: refused, naming the
	// store's KEK, by check-config and by startup.
	newID, _ := keystore.GenerateKEKLine(rand.Reader, "kek-2")
	writeKEK(newID)
	for _, extra := range [][]string{{"--check-config"}, nil} {
		_, _, err := runOnce(t, m.args(store, extra...), nil)
		if err == nil || !strings.Contains(err.Error(), `keys sealed under kek "e2e-1", which the kek file lacks`) {
			t.Fatalf("KEK file without the store's KEK %v: %v", extra, err)
		}
	}
	if after, _ := os.ReadFile(dbPath); !bytes.Equal(before, after) {
		t.Error("a refused start or a check-config changed the store file")
	}
	// Rotated correctly (new first, old kept): fine, and kek-2 is new.
	writeKEK(newID, strings.TrimSpace(string(good)))
	before, _ = os.ReadFile(dbPath)
	stdout, _, err = runOnce(t, append(m.args(store), "--check-config"), nil)
	if err != nil || !strings.Contains(stdout, "new: kek-2 (starting records it)") {
		t.Fatalf("rotated: %v\n%s", err, stdout)
	}
	if after, _ := os.ReadFile(dbPath); !bytes.Equal(before, after) {
		t.Error("check-config wrote to the store")
	}
	s = start(t, m.args(store), nil)
	if a := do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(m.token(t, kid))); a.status != 200 {
		t.Errorf("the key after the rotation: %d", a.status)
	}
}

// --check-config's summary warns of what works but will not serve: no
// admin credentials, no token certificate valid now.
func TestCheckConfigWarnings(t *testing.T) {
	m := newMaterial(t)
	certPEM, _, err := auth.GenerateDevCertificate(rand.Reader, "expired", time.Now().Add(-48*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	args := withoutFlag(m.args("bolt:"+filepath.Join(m.dir, "keys.db"), "--check-config"), "--admin-credentials-file")
	stdout, _, err := runOnce(t, args, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"admin credentials:   none",
		"warning: no admin credentials are configured",
		"warning: none of the 1 trusted token certificates is valid now",
		"warning: the store bolt:" + filepath.Join(m.dir, "keys.db") + " does not exist: starting creates a new, empty store",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
}

// --check-config connects to a Redis store, and fails when it cannot.
func TestCheckConfigRedis(t *testing.T) {
	m := newMaterial(t)
	rs := redistest.Start(t, redistest.Options{})
	args := append(withoutFlag(m.args(""), "--store"), "--check-config")
	stdout, _, err := runOnce(t, args, map[string]string{"KD_STORE": rs.URL()})
	if err != nil || !strings.Contains(stdout, rs.URL()+": reachable") || !strings.Contains(stdout, "is new and empty") {
		t.Fatalf("reachable Redis: %v\n%s", err, stdout)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "redis://" + l.Addr().String() + "/0"
	l.Close()
	if _, _, err := runOnce(t, append(args, "--store-timeout", "200ms"), map[string]string{"KD_STORE": closed}); err == nil {
		t.Fatal("check-config passed with an unreachable Redis")
	}
}

// withoutFlag drops a flag and its value from args.
func withoutFlag(args []string, name string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == name {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// No admin credentials: a warning at startup, and the admin API's 401 says
// that none are configured (not that the one sent is wrong).
func TestNoAdminCredentials(t *testing.T) {
	m := newMaterial(t)
	s := start(t, withoutFlag(m.args("bolt:"+filepath.Join(m.dir, "keys.db")), "--admin-credentials-file"), nil)
	if log := s.stderr.String(); !strings.Contains(log, `"level":"WARN","msg":"no admin credentials are configured`) {
		t.Errorf("no warning at startup:\n%s", log)
	}
	for _, h := range []http.Header{bearer(adminSecret), nil} {
		a := do(t, "GET", s.adminURL+"/api/keys", h)
		p := problemOf(t, a)
		if a.status != 401 || p["reason"] != "no_credentials_configured" || !strings.Contains(p["detail"].(string), "no admin credentials are configured") {
			t.Errorf("401: %d %s", a.status, a.body)
		}
	}
}

// Store URL mistakes are explained with the accepted forms, bolt:PATH
// first, and no password placeholder.
func TestStoreURLErrors(t *testing.T) {
	m := newMaterial(t)
	for store, want := range map[string]string{
		"bolt/data/x.db":     `--store "bolt/data/x.db" is not a store URL (did you mean bolt:/data/x.db?); the accepted forms are bolt:PATH`,
		"data/keys.db":       `(did you mean bolt:data/keys.db?)`,
		"redis:/host:6379/0": `is not a store URL`,
		"memcache://h:1":     `this one: redisstore: URL scheme "memcache" is not supported`,
		"redis://h:1/x":      `database "x" is not a number`,
		"bolt:":              `--store bolt:PATH needs a path`,
	} {
		_, _, err := runOnce(t, append(m.args(store), "--check-config"), nil)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "bolt:PATH") || strings.Contains(err.Error(), "pass") {
			t.Errorf("--store %s: %v", store, err)
			continue
		}
		if i, j := strings.Index(err.Error(), "bolt:PATH"), strings.Index(err.Error(), "redis://[user@]"); j >= 0 && j < i {
			t.Errorf("--store %s: bolt:PATH is not the first form: %v", store, err)
		}
	}
	if _, _, err := runOnce(t, append(withoutFlag(m.args(""), "--store"), "--check-config"), map[string]string{"KD_STORE": "u:s3cret@host"}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a store spec that may hold a password is quoted: %v", err)
	}
}

// A mistyped flag is one line naming the nearest flags and --help, not
// the whole usage; --help goes to stdout.
func TestUnknownFlag(t *testing.T) {
	stdout, stderr, err := runOnce(t, []string{"keydelivery", "--stroe", "bolt:x"}, nil)
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "unknown flag --stroe (did you mean --store?)") ||
		!strings.Contains(err.Error(), "keydelivery --help") || stdout != "" || stderr != "" {
		t.Errorf("--stroe: %v\nstdout %q\nstderr %q", err, stdout, stderr)
	}
	stdout, stderr, err = runOnce(t, []string{"keydelivery", "--help"}, nil)
	if err != nil || !strings.Contains(stdout, "  --store ") || !strings.Contains(stdout, "  --create-store") || !strings.Contains(stdout, "KD_<FLAG>") || stderr != "" {
		t.Errorf("--help: %v\n%s%s", err, stdout, stderr)
	}
}

// A KD_ variable that sets nothing is a warning naming the nearest one.
func TestUnknownEnvironmentVariable(t *testing.T) {
	m := newMaterial(t)
	env := map[string]string{"KD_TOKEN_AUDEINCE": "urn:x", "KD_SERVER": "http://127.0.0.1:8081"}
	_, stderr, err := runOnce(t, append(m.args("bolt:"+filepath.Join(m.dir, "keys.db")), "--check-config"), env,
		"KD_TOKEN_AUDEINCE=urn:x", "KD_SERVER=http://127.0.0.1:8081", "PATH=/bin")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, `"level":"WARN","msg":"unknown environment variable: KD_TOKEN_AUDEINCE sets nothing: no flag is called --token-audeince (did you mean KD_TOKEN_AUDIENCE?)"`) {
		t.Errorf("no warning:\n%s", stderr)
	}
	if strings.Contains(stderr, "KD_SERVER") || strings.Contains(stderr, "urn:x") {
		t.Errorf("warned of kdctl's variable, or quoted a value:\n%s", stderr)
	}
}

// Importing a file whose entries have no Id twice (here across a restart)
// answers the same KIDs, unchanged, and stores each key once; the answer
// marks the KIDs the server chose. Counts in messages agree with their
// nouns.
func TestImportWithoutIdsTwice(t *testing.T) {
	m := newMaterial(t)
	store := "bolt:" + filepath.Join(m.dir, "keys.db")
	v1, v2 := randomKey(t), randomKey(t)
	body := `[{"Data":"` + b64(v1[:]) + `"},{"Data":"` + b64(v2[:]) + `"}]`
	var first []map[string]any
	for round := range 2 {
		s := start(t, m.args(store), nil)
		st, out := s.importJSON(t, body)
		var res []map[string]any
		if err := json.Unmarshal([]byte(out), &res); st != 200 || err != nil || len(res) != 2 {
			t.Fatalf("import %d: %d %s", round, st, out)
		}
		for i, r := range res {
			if r["IdGenerated"] != true || r["Status"] != []string{"created", "unchanged"}[round] || round == 1 && r["Id"] != first[i]["Id"] {
				t.Errorf("import %d entry %d: %v (first %v)", round, i, r, first)
			}
		}
		first = res
		kid := first[0]["Id"].(string)
		if a := do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(m.token(t, kid))); a.status != 200 || !bytes.Equal(a.body, v1[:]) {
			t.Errorf("the imported key: %d", a.status)
		}
		a := do(t, "GET", s.adminURL+"/api/keys", bearer(adminSecret))
		var list struct{ Keys []map[string]any }
		if err := json.Unmarshal(a.body, &list); err != nil || len(list.Keys) != 2 {
			t.Errorf("round %d: %d keys stored, want 2: %s", round, len(list.Keys), a.body)
		}
		if round == 1 {
			st, out := s.importJSON(t, `[{"Data":"AAAA"}]`)
			if st != 400 || !strings.Contains(out, "1 entry of the import is invalid") {
				t.Errorf("one bad entry: %d %s", st, out)
			}
		}
		s.stop(t)
	}
}

var (
	camelCase  = regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)
	pascalCase = regexp.MustCompile(`^[A-Z][a-zA-Z0-9]*$`)
	// odataMembers are OData's own envelope members around AMS entities.
	odataMembers = map[string]bool{"d": true, "results": true, "value": true, "__metadata": true, "uri": true, "type": true, "odata.metadata": true}
)

// memberNames returns every object member name in a JSON document, nested
// ones included.
func memberNames(t *testing.T, b []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	var names []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				names = append(names, k)
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return names
}

// One naming style per API, as the README says: camelCase on the native
// API, the seed's PascalCase on the import routes and the AMS routes (in
// OData's envelope).
func TestOneNamingStylePerAPI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := start(t, []string{"keydelivery", "--dev", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--audit-log", filepath.Join(dir, "audit.log")}, nil)
	secret, err := os.ReadFile(devPaths(dir).AdminTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	admin := bearer(strings.TrimSpace(string(secret)))
	send := func(method, path, body string) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, s.adminURL+path, strings.NewReader(body))
		req.Header = admin.Clone()
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b.Bytes())
		}
		return b.Bytes()
	}
	const kid = "0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f"
	native := [][]byte{
		send("POST", "/api/keys", `{"id":"`+kid+`","name":"n","assets":["a"]}`),
		send("GET", "/api/keys/"+kid, ""),
		send("GET", "/api/keys", ""),
		send("GET", "/api/assets/a/keys", ""),
		send("GET", "/api/keys/"+kid+"/delivery-url?type=clearkey", ""),
		send("POST", "/api/keyseeds", `{"name":"s"}`),
		send("GET", "/api/keyseeds", ""),
		send("GET", "/api/token-certificates", ""),
		send("DELETE", "/api/keys/"+kid, ""),
		send("POST", "/api/keys/"+kid+"/restore", ""),
	}
	for _, b := range native {
		for _, n := range memberNames(t, b) {
			if !camelCase.MatchString(n) {
				t.Errorf("native API member %q is not camelCase: %s", n, b)
			}
		}
	}
	v := randomKey(t)
	for _, path := range []string{"/api/keys/import", "/api/Import/ContentKeys"} {
		b := send("POST", path, `[{"Data":"`+b64(v[:])+`"}]`)
		for _, n := range memberNames(t, b) {
			if !pascalCase.MatchString(n) {
				t.Errorf("%s answer member %q is not PascalCase: %s", path, n, b)
			}
		}
	}
	for _, path := range []string{"/api/ContentKeys", "/api/ContentKeys('nb:kid:UUID:" + kid + "')", "/api/GetProtectionKeyId?contentKeyType=1"} {
		for _, accept := range []string{"application/json", "application/json;odata=verbose"} {
			req, _ := http.NewRequest("GET", s.adminURL+path, nil)
			req.Header = admin.Clone()
			req.Header.Set("Accept", accept)
			a, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			b.ReadFrom(a.Body)
			a.Body.Close()
			for _, n := range memberNames(t, b.Bytes()) {
				if !pascalCase.MatchString(n) && !odataMembers[n] {
					t.Errorf("AMS answer of %s member %q is neither PascalCase nor OData's: %s", path, n, b.Bytes())
				}
			}
		}
	}
}
