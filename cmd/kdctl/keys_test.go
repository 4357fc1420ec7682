package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keydelivery/keydelivery/keystore"
)

// session starts a test server trusting one new credential per role and
// returns it with kdctl's environment for each role.
func session(t *testing.T, roles ...string) (*testServer, map[string]map[string]string) {
	t.Helper()
	var creds strings.Builder
	secrets := map[string]string{}
	for _, role := range roles {
		secret, file := generateAdminKey(t, role+"-cred", role)
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		creds.Write(b)
		secrets[role] = secret
	}
	srv := newTestServer(t, writeFile(t, "credentials", []byte(creds.String())))
	envs := map[string]map[string]string{}
	for role, secret := range secrets {
		envs[role] = map[string]string{"KD_SERVER": srv.url, "KD_ADMIN_TOKEN": secret}
	}
	return srv, envs
}

func mustKID(t *testing.T, s string) keystore.KeyID {
	t.Helper()
	id, err := keystore.ParseKeyID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// listLines runs keys list with args and decodes its JSON lines.
func listLines(t *testing.T, env map[string]string, args ...string) []map[string]any {
	t.Helper()
	r := kdctl(t, env, append([]string{"keys", "list"}, args...)...)
	if r.code != 0 {
		t.Fatalf("keys list %v: %d %s", args, r.code, r.stderr)
	}
	var out []map[string]any
	for line := range strings.Lines(r.stdout) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("keys list line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func ids(lines []map[string]any) []string {
	var out []string
	for _, m := range lines {
		out = append(out, fmt.Sprint(m["id"]))
	}
	return out
}

const (
	kidA = "0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f"
	kidB = "1b4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f"
	kidC = "2c4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f"
)

func TestImportJSONThenList(t *testing.T) {
	srv, envs := session(t, "writer")
	env := envs["writer"]
	iv := "AAECAwQFBgcICQoLDA0ODw=="
	doc := `[{"Id":"` + kidA + `","Data":"` + b64("0123456789abcdef") + `","Iv":"` + iv + `"},
	         {"Id":"` + strings.ToUpper(kidB) + `","Data":"` + b64("fedcba9876543210") + `","Name":"trailer"}]`
	file := writeFile(t, "keys.json", []byte(doc))

	r := kdctl(t, env, "keys", "import", file)
	if r.code != 0 {
		t.Fatalf("import: %d %s", r.code, r.stderr)
	}
	var out []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out) != 2 {
		t.Fatalf("import printed %q: %v", r.stdout, err)
	}
	if out[0]["Id"] != kidA || out[0]["Status"] != "created" || out[1]["Id"] != kidB || out[1]["CreationMethod"] != 2.0 {
		t.Errorf("import answer %v", out)
	}
	if !strings.Contains(r.stderr, "2 created, 0 unchanged") {
		t.Errorf("import summary %q", r.stderr)
	}
	k, err := srv.keys.Get(context.Background(), mustKID(t, kidA))
	if err != nil || string(k.Value[:]) != "0123456789abcdef" || base64.StdEncoding.EncodeToString(k.IV) != iv {
		t.Errorf("stored %x %x %v", k.Value, k.IV, err)
	}

	lines := listLines(t, env)
	if got := ids(lines); len(got) != 2 || got[0] != kidA || got[1] != kidB {
		t.Fatalf("list ids %v", got)
	}
	for _, m := range lines {
		for _, field := range []string{"id", "name", "type", "creationMethod", "created"} {
			if _, ok := m[field]; !ok {
				t.Errorf("list line %v lacks %s", m, field)
			}
		}
		if _, ok := m["deletedAt"]; ok {
			t.Errorf("live key with deletedAt: %v", m)
		}
	}
	if lines[1]["name"] != "trailer" || lines[0]["creationMethod"] != "Import" {
		t.Errorf("list %v", lines)
	}

	// The same batch again from standard input, format sniffed: unchanged.
	r = kdctlStdin(t, env, "\n  "+doc, "keys", "import", "-")
	if r.code != 0 || strings.Count(r.stdout, `"unchanged"`) != 2 || !strings.Contains(r.stderr, "0 created, 2 unchanged") {
		t.Errorf("re-import from stdin: %d %s %s", r.code, r.stdout, r.stderr)
	}
	// No key material ever comes back.
	r = kdctl(t, env, "keys", "list")
	for _, secret := range []string{b64("0123456789abcdef"), hex.EncodeToString([]byte("0123456789abcdef")), "0123456789abcdef"} {
		if strings.Contains(r.stdout, secret) {
			t.Errorf("list shows key material")
		}
	}
}

func TestImportCPIX(t *testing.T) {
	srv, envs := session(t, "writer")
	env := envs["writer"]
	seed := filepath.Join("..", "..", "cpix", "testdata", "seed-002.xml")
	r := kdctl(t, env, "keys", "import", seed, "--type", "CommonEncryption")
	if r.code != 0 {
		t.Fatalf("import seed: %d %s", r.code, r.stderr)
	}
	for _, kid := range []string{"d83cb192-1135-4c4e-9267-120b0d762856", "9d8d2d6a-ec64-40d2-ab4d-f12f17aeeeeb"} {
		if !strings.Contains(r.stdout, kid) {
			t.Errorf("answer lacks %s: %s", kid, r.stdout)
		}
		k, err := srv.keys.Get(context.Background(), mustKID(t, kid))
		if err != nil || len(k.IV) != 16 || k.Type != keystore.CommonEncryption || k.Method != keystore.CreatedImport {
			t.Errorf("stored %s: %+v %v", kid, k, err)
		}
	}
	// Without an extension the first byte tells; from stdin too.
	b, err := os.ReadFile(seed)
	if err != nil {
		t.Fatal(err)
	}
	noExt := writeFile(t, "seed", b)
	if r := kdctl(t, env, "keys", "import", noExt, "--type", "CommonEncryption"); r.code != 0 || strings.Count(r.stdout, `"unchanged"`) != 2 {
		t.Errorf("sniffed file: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := kdctlStdin(t, env, string(b), "keys", "import", "-", "--type", "0"); r.code != 0 || strings.Count(r.stdout, `"unchanged"`) != 2 {
		t.Errorf("stdin: %d %s %s", r.code, r.stdout, r.stderr)
	}
	// --format wins over the extension: a CPIX document sent as JSON.
	if r := kdctl(t, env, "keys", "import", seed, "--format", "json"); r.code != 1 || !strings.Contains(r.stderr, "invalid_body") {
		t.Errorf("--format json on CPIX: %d %s", r.code, r.stderr)
	}
	// A CPIX document with a bad entry: each problem is printed.
	bad := strings.Replace(string(b), `<pskc:PlainValue>AAAAAAAAAAAAAAAAAAAAAA==`, `<pskc:PlainValue>AAAA`, 1)
	r = kdctl(t, env, "keys", "import", writeFile(t, "bad.cpix", []byte(bad)))
	if r.code != 1 || !strings.Contains(r.stderr, "entry 0 (kid d83cb192-1135-4c4e-9267-120b0d762856): invalid_key_length") {
		t.Errorf("bad CPIX: %d %s", r.code, r.stderr)
	}
	// A file that is neither.
	if r := kdctl(t, env, "keys", "import", writeFile(t, "what", []byte("Id,Data\n"))); r.code != 1 || !strings.Contains(r.stderr, "--format") {
		t.Errorf("unknown format: %d %s", r.code, r.stderr)
	}
	if r := kdctl(t, env, "keys", "import", filepath.Join(t.TempDir(), "missing.json")); r.code != 1 {
		t.Errorf("missing file: %d %s", r.code, r.stderr)
	}
}

func TestImportConflict(t *testing.T) {
	srv, envs := session(t, "writer")
	env := envs["writer"]
	first := writeFile(t, "first.json", []byte(`[{"Id":"`+kidA+`","Data":"`+b64("0123456789abcdef")+`"}]`))
	if r := kdctl(t, env, "keys", "import", first); r.code != 0 {
		t.Fatalf("import: %d %s", r.code, r.stderr)
	}
	second := writeFile(t, "second.json", []byte(`[{"Id":"`+kidA+`","Data":"`+b64("XXXXXXXXXXXXXXXX")+`"},{"Id":"`+kidB+`","Data":"`+b64("fedcba9876543210")+`"}]`))
	r := kdctl(t, env, "keys", "import", second)
	if r.code != 1 {
		t.Fatalf("conflict: %d %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "409 conflict/key_conflict") || !strings.Contains(r.stderr, "conflict: "+kidA+" is stored with a different key") {
		t.Errorf("conflict stderr %q", r.stderr)
	}
	// Every entry's outcome goes to stdout: the other key was imported.
	var results []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &results); err != nil || len(results) != 2 || results[1]["Id"] != kidB || results[1]["Status"] != "created" {
		t.Errorf("conflict stdout %q: %v", r.stdout, err)
	}
	k, err := srv.keys.Get(context.Background(), mustKID(t, kidA))
	if err != nil || string(k.Value[:]) != "0123456789abcdef" {
		t.Errorf("the stored key changed: %v", err)
	}
}

func TestImportInvalid(t *testing.T) {
	_, envs := session(t, "writer")
	env := envs["writer"]
	doc := `[{"Id":"` + kidA + `","Data":"AAA="},
	         {"Id":"` + kidB + `","Data":"` + b64("0123456789abcdef") + `"},
	         {"Id":"` + kidB + `","Data":"` + b64("fedcba9876543210") + `"},
	         {"Id":"not-a-kid","Data":"` + b64("0123456789abcdef") + `"}]`
	r := kdctl(t, env, "keys", "import", writeFile(t, "bad.json", []byte(doc)))
	if r.code != 1 || !strings.Contains(r.stderr, "400 invalid_request/invalid_entries") {
		t.Fatalf("invalid: %d %s", r.code, r.stderr)
	}
	for _, want := range []string{
		"entry 0 (kid " + kidA + "): invalid_data: ",
		"entry 2 (kid " + kidB + "): duplicate_kid: ",
		"entry 3 (kid not-a-kid): invalid_kid: ",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if lines := listLines(t, env); len(lines) != 0 {
		t.Errorf("a refused batch imported %v", ids(lines))
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	srcSrv, srcEnvs := session(t, "admin", "reader")
	src := srcEnvs["admin"]
	doc := `[{"Id":"` + kidA + `","Data":"` + b64("0123456789abcdef") + `","Iv":"AAECAwQFBgcICQoLDA0ODw=="},{"Id":"` + kidB + `","Data":"` + b64("fedcba9876543210") + `"}]`
	if r := kdctl(t, src, "keys", "import", writeFile(t, "k.json", []byte(doc))); r.code != 0 {
		t.Fatalf("import: %d %s", r.code, r.stderr)
	}
	if r := kdctl(t, src, "keys", "create", "--id", kidC); r.code != 0 {
		t.Fatalf("create: %d %s", r.code, r.stderr)
	}
	out := filepath.Join(t.TempDir(), "keys.cpix")
	r := kdctl(t, src, "keys", "export", kidA, "{"+strings.ToUpper(kidB)+"}", kidC, "--out", out)
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "3 content keys in the clear") {
		t.Fatalf("export: %d %q %s", r.code, r.stdout, r.stderr)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v %v", fi.Mode(), err)
	}
	exported, _ := os.ReadFile(out)

	dstSrv, dstEnvs := session(t, "writer")
	if r := kdctl(t, dstEnvs["writer"], "keys", "import", out); r.code != 0 || strings.Count(r.stdout, `"created"`) != 3 {
		t.Fatalf("import of the export: %d %s %s", r.code, r.stdout, r.stderr)
	}
	for _, kid := range []string{kidA, kidB, kidC} {
		a, err1 := srcSrv.keys.Get(context.Background(), mustKID(t, kid))
		b, err2 := dstSrv.keys.Get(context.Background(), mustKID(t, kid))
		if err1 != nil || err2 != nil || a.Value != b.Value || !bytes.Equal(a.IV, b.IV) {
			t.Errorf("%s: %x/%x %x/%x %v %v", kid, a.Value, b.Value, a.IV, b.IV, err1, err2)
		}
	}

	// An existing file is never overwritten.
	r = kdctl(t, src, "keys", "export", kidA, "--out", out)
	if r.code != 1 || !strings.Contains(r.stderr, "refusing to overwrite") {
		t.Errorf("overwrite: %d %s", r.code, r.stderr)
	}
	if again, _ := os.ReadFile(out); !bytes.Equal(again, exported) {
		t.Error("the export file changed")
	}
	// To stdout, with the warning on stderr.
	r = kdctl(t, src, "keys", "export", kidA)
	if r.code != 0 || !strings.Contains(r.stdout, "<CPIX") || !strings.Contains(r.stdout, kidA) || !strings.Contains(r.stderr, "standard output holds 1 content key in the clear") {
		t.Errorf("export to stdout: %d %s", r.code, r.stderr)
	}
	// An unknown key, a reader, a bad KID.
	if r := kdctl(t, src, "keys", "export", kidA, "11111111-2222-4333-8444-555555555555"); r.code != 1 || !strings.Contains(r.stderr, "not_found") {
		t.Errorf("unknown key: %d %s", r.code, r.stderr)
	}
	if r := kdctl(t, srcEnvs["reader"], "keys", "export", kidA); r.code != 1 || !strings.Contains(r.stderr, "403 forbidden/role_insufficient") || r.stdout != "" {
		t.Errorf("reader export: %d %s", r.code, r.stderr)
	}
	if r := kdctl(t, src, "keys", "export", "nope"); r.code != 2 {
		t.Errorf("bad kid: %d %s", r.code, r.stderr)
	}
	if r := kdctl(t, src, "keys", "export"); r.code != 2 {
		t.Errorf("no kid: %d %s", r.code, r.stderr)
	}
}

func TestDeleteRestorePurge(t *testing.T) {
	srv, envs := session(t, "writer", "admin")
	w, a := envs["writer"], envs["admin"]
	if r := kdctl(t, w, "keys", "create", "--id", kidA); r.code != 0 {
		t.Fatalf("create: %d %s", r.code, r.stderr)
	}
	// A live key is never purged in one step.
	if r := kdctl(t, a, "keys", "purge", kidA); r.code != 1 || !strings.Contains(r.stderr, "409 conflict/not_deleted") {
		t.Errorf("purge live: %d %s", r.code, r.stderr)
	}
	r := kdctl(t, w, "keys", "delete", kidA)
	if r.code != 0 || !strings.Contains(r.stdout, `"deletedAt"`) {
		t.Fatalf("delete: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if _, err := srv.keys.Get(context.Background(), mustKID(t, kidA)); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("a deleted key is still delivered: %v", err)
	}
	if lines := listLines(t, w); len(lines) != 1 || lines[0]["deletedAt"] == nil {
		t.Errorf("list after delete: %v", lines)
	}
	r = kdctl(t, w, "keys", "restore", kidA)
	if r.code != 0 || strings.Contains(r.stdout, "deletedAt") || !strings.Contains(r.stdout, kidA) {
		t.Fatalf("restore: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if _, err := srv.keys.Get(context.Background(), mustKID(t, kidA)); err != nil {
		t.Errorf("restored key: %v", err)
	}
	if r := kdctl(t, w, "keys", "restore", kidA); r.code != 1 || !strings.Contains(r.stderr, "not_deleted") {
		t.Errorf("restore live: %d %s", r.code, r.stderr)
	}
	if r := kdctl(t, w, "keys", "delete", kidA); r.code != 0 {
		t.Fatalf("delete: %d %s", r.code, r.stderr)
	}
	if r := kdctl(t, w, "keys", "purge", kidA); r.code != 1 || !strings.Contains(r.stderr, "403 forbidden") {
		t.Errorf("writer purge: %d %s", r.code, r.stderr)
	}
	r = kdctl(t, a, "keys", "purge", kidA)
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "purged "+kidA) {
		t.Fatalf("purge: %d %q %s", r.code, r.stdout, r.stderr)
	}
	if r := kdctl(t, w, "keys", "get", kidA); r.code != 1 || !strings.Contains(r.stderr, "404 not_found") {
		t.Errorf("get after purge: %d %s", r.code, r.stderr)
	}
	if r := kdctl(t, w, "keys", "restore", kidA); r.code != 1 || !strings.Contains(r.stderr, "404") {
		t.Errorf("restore after purge: %d %s", r.code, r.stderr)
	}
	for _, sub := range []string{"delete", "restore", "purge"} {
		if r := kdctl(t, w, "keys", sub); r.code != 2 {
			t.Errorf("%s without KID: %d %s", sub, r.code, r.stderr)
		}
	}
}

func TestListPages(t *testing.T) {
	srv, envs := session(t, "writer")
	env := envs["writer"]
	var want []string
	for i := range 5 {
		kid := fmt.Sprintf("%d0000000-0000-4000-8000-000000000000", i)
		want = append(want, kid)
		if r := kdctl(t, env, "keys", "create", "--id", kid, "--quiet"); r.code != 0 {
			t.Fatalf("create: %d %s", r.code, r.stderr)
		}
	}
	// One page, and the cursor to continue from.
	r := kdctl(t, env, "keys", "list", "--limit", "2")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stderr, "--cursor ") {
		t.Fatalf("one page: %d %s %s", r.code, r.stdout, r.stderr)
	}
	cursor := strings.Fields(r.stderr[strings.Index(r.stderr, "--cursor ")+len("--cursor "):])[0]
	cursor = strings.TrimSuffix(cursor, ",")
	if got := ids(listLines(t, env, "--limit", "2", "--cursor", cursor)); strings.Join(got, " ") != strings.Join(want[2:4], " ") {
		t.Errorf("second page %v", got)
	}
	// Every page.
	if got := ids(listLines(t, env, "--limit", "2", "--all")); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("--all %v, want %v", got, want)
	}
	// The keys of one asset; an asset ID with '/' and '?' stays one path
	// segment.
	const asset = "show/s01?e=1"
	for _, kid := range []string{"a1000000-0000-4000-8000-000000000000", "a2000000-0000-4000-8000-000000000000"} {
		if _, err := srv.keys.Create(context.Background(), keystore.Key{ID: mustKID(t, kid), Value: [16]byte{1}, Assets: []string{asset}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := ids(listLines(t, env, "--asset", asset, "--limit", "1", "--all")); strings.Join(got, " ") != "a1000000-0000-4000-8000-000000000000 a2000000-0000-4000-8000-000000000000" {
		t.Errorf("--asset %v", got)
	}
	if got := listLines(t, env, "--asset", "other"); len(got) != 0 {
		t.Errorf("empty asset: %v", got)
	}
	for name, args := range map[string][]string{
		"negative limit": {"--limit", "-1"},
		"bad asset":      {"--asset", "a b"},
		"argument":       {"extra"},
	} {
		if r := kdctl(t, env, append([]string{"keys", "list"}, args...)...); r.code != 2 {
			t.Errorf("%s: %d %s", name, r.code, r.stderr)
		}
	}
	if r := kdctl(t, env, "keys", "list", "--cursor", "zz"); r.code != 1 || !strings.Contains(r.stderr, "invalid_cursor") {
		t.Errorf("bad cursor: %d %s", r.code, r.stderr)
	}
}

func TestDeliveryURL(t *testing.T) {
	_, envs := session(t, "reader", "writer")
	if r := kdctl(t, envs["writer"], "keys", "create", "--id", kidA); r.code != 0 {
		t.Fatalf("create: %d %s", r.code, r.stderr)
	}
	r := kdctl(t, envs["reader"], "keys", "delivery-url", strings.ToUpper(kidA))
	if r.code != 0 || r.stdout != "https://keys.example.com/keys/"+kidA+"\n" {
		t.Errorf("envelope: %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = kdctl(t, envs["reader"], "keys", "delivery-url", kidA, "--type", "playready")
	if r.code != 0 || r.stdout != "https://keys.example.com/playready/license\n" {
		t.Errorf("playready: %d %q %s", r.code, r.stdout, r.stderr)
	}
	if r := kdctl(t, envs["reader"], "keys", "delivery-url", kidB); r.code != 1 || !strings.Contains(r.stderr, "404 not_found") {
		t.Errorf("unknown key: %d %s", r.code, r.stderr)
	}
	if r := kdctl(t, envs["reader"], "keys", "delivery-url", kidA, "--type", "dash"); r.code != 2 {
		t.Errorf("bad type: %d %s", r.code, r.stderr)
	}
}

// TestImportWithoutIds: entries without Id get KIDs from the server, and
// importing the same file again answers the same KIDs, unchanged, instead
// of storing the keys a second time; the summary says so, in the right
// number.
func TestImportWithoutIds(t *testing.T) {
	_, envs := session(t, "writer")
	env := envs["writer"]
	file := writeFile(t, "noids.json", []byte(`[{"Data":"`+b64("0123456789abcdef")+`"},{"Data":"`+b64("fedcba9876543210")+`","Name":"b"}]`))
	var kids [2][]string
	for round := range 2 {
		r := kdctl(t, env, "keys", "import", file)
		if r.code != 0 {
			t.Fatalf("import %d: %d %s", round, r.code, r.stderr)
		}
		var out []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out) != 2 {
			t.Fatalf("import %d printed %q", round, r.stdout)
		}
		want := []string{"created", "unchanged"}[round]
		for _, e := range out {
			if e["Status"] != want || e["IdGenerated"] != true {
				t.Errorf("import %d: entry %v, want %s and IdGenerated", round, e, want)
			}
			kids[round] = append(kids[round], fmt.Sprint(e["Id"]))
		}
		note := []string{"2 entries had no Id: the server chose their KIDs (IdGenerated); 0 were already stored",
			"2 entries had no Id: the server chose their KIDs (IdGenerated); 2 were already stored"}[round]
		if !strings.Contains(r.stderr, note) || !strings.Contains(r.stderr, "imported 2 keys: ") {
			t.Errorf("import %d stderr %q", round, r.stderr)
		}
	}
	if strings.Join(kids[0], " ") != strings.Join(kids[1], " ") {
		t.Errorf("the second import answered %v, the first %v", kids[1], kids[0])
	}
	if lines := listLines(t, env); len(lines) != 2 {
		t.Errorf("%d keys stored after importing 2 twice: %v", len(lines), ids(lines))
	}
	// One key: a singular summary, no IdGenerated for an entry with Id.
	r := kdctl(t, env, "keys", "import", writeFile(t, "one.json", []byte(`[{"Id":"`+kidC+`","Data":"`+b64("AAAAAAAAAAAAAAAA")+`"}]`)))
	if r.code != 0 || !strings.Contains(r.stderr, "imported 1 key: 1 created, 0 unchanged") || strings.Contains(r.stdout, "IdGenerated") || strings.Contains(r.stderr, "had no Id") {
		t.Errorf("one key: %d %s %s", r.code, r.stdout, r.stderr)
	}
}

// TestImportTypeConflict: the same key under its KID but with another
// content key type is told apart from another key under the KID.
func TestImportTypeConflict(t *testing.T) {
	_, envs := session(t, "writer")
	env := envs["writer"]
	file := writeFile(t, "k.json", []byte(`[{"Id":"`+kidA+`","Data":"`+b64("0123456789abcdef")+`"}]`))
	if r := kdctl(t, env, "keys", "import", file); r.code != 0 {
		t.Fatalf("import: %d %s", r.code, r.stderr)
	}
	r := kdctl(t, env, "keys", "import", file, "--type", "CommonEncryption")
	if r.code != 1 || !strings.Contains(r.stderr, "conflict: "+kidA+" is stored with the same key but another content key type") ||
		strings.Contains(r.stderr, "is stored with a different key") || !strings.Contains(r.stdout, `"Conflict": "type"`) {
		t.Errorf("type conflict: %d %s %s", r.code, r.stdout, r.stderr)
	}
	other := writeFile(t, "o.json", []byte(`[{"Id":"`+kidA+`","Data":"`+b64("XXXXXXXXXXXXXXXX")+`"}]`))
	r = kdctl(t, env, "keys", "import", other)
	if r.code != 1 || !strings.Contains(r.stderr, "conflict: "+kidA+" is stored with a different key") || !strings.Contains(r.stdout, `"Conflict": "key"`) ||
		!strings.Contains(r.stderr, "1 KID already stored with a different key, or with another content key type (see Conflict in results), was left untouched") {
		t.Errorf("key conflict: %d %s %s", r.code, r.stdout, r.stderr)
	}
}
