package credentials

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Test secrets, one per role, and the credentials file naming them.
const (
	secretReader   = "kda_reader-secret"
	secretWriter   = "kda_writer-secret"
	secretExporter = "kda_exporter-secret"
	secretAdmin    = "kda_admin-secret"
)

func testCredentialsText() string {
	return fmt.Sprintf("# test credentials\nreader-1 reader %s\nwriter-1 writer %s\n\nexporter-1 exporter %s\nadmin-1 admin %s\n",
		HashSecret(secretReader), HashSecret(secretWriter), HashSecret(secretExporter), strings.ToUpper(HashSecret(secretAdmin)))
}

func TestRolePermissions(t *testing.T) {
	for role, allowed := range map[Role]Permission{RoleReader: Read, RoleWriter: Read | Write, RoleExporter: Read | Export,
		RoleAdmin: Read | Write | Export | Admin | SPEKE, RolePackager: SPEKE} {
		for _, p := range []Permission{Read, Write, Export, Admin, SPEKE} {
			if role.Allows(p) != (allowed&p != 0) {
				t.Errorf("%s allows %d: %v", role, p, role.Allows(p))
			}
		}
		if role.Allows(0) {
			t.Errorf("%s allows nothing", role)
		}
	}
	if Role("owner").Allows(Read) {
		t.Error("an unknown role allows reading")
	}
}

func TestParseCredentials(t *testing.T) {
	c, err := Parse([]byte(testCredentialsText()))
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 4 {
		t.Fatalf("%d credentials", c.Len())
	}
	for secret, want := range map[string]struct {
		name string
		role Role
	}{
		secretReader:   {"reader-1", RoleReader},
		secretWriter:   {"writer-1", RoleWriter},
		secretExporter: {"exporter-1", RoleExporter},
		secretAdmin:    {"admin-1", RoleAdmin}, // hash written in upper case
	} {
		cr, ok := c.Match(secret)
		if !ok || cr.Name != want.name || cr.Role != want.role {
			t.Errorf("%s: %+v %v", secret, cr, ok)
		}
	}
	for _, s := range []string{"", "kda_", secretAdmin + " ", HashSecret(secretAdmin)} {
		if _, ok := c.Match(s); ok {
			t.Errorf("%q matched", s)
		}
	}
	// Role names in any case.
	c, err = Parse([]byte("ops WRITER " + HashSecret("x") + "\n"))
	if cr, ok := c.Match("x"); err != nil || !ok || cr.Role != RoleWriter {
		t.Errorf("upper-case role: %v %+v", err, cr)
	}
}

func TestParseCredentialsRefuses(t *testing.T) {
	h := HashSecret("s")
	for _, c := range []struct {
		name, text, want string
	}{
		{"unknown role", "a owner " + h, "line 1"},
		{"bad hex", "# c\na reader " + strings.Repeat("zz", 32), "line 2"},
		{"short hash", "a reader " + h[:62], "line 1"},
		{"long hash", "a reader " + h + "00", "line 1"},
		{"duplicate name", "a reader " + h + "\na writer " + HashSecret("t"), "line 2"},
		{"duplicate secret", "a reader " + h + "\n\nb writer " + h, "line 3"},
		{"two fields", "a reader", "line 1"},
		{"four fields", "a reader " + h + " # comment", "line 1"},
		{"five fields", "a packager " + h + " content=x y", "line 1"},
		{"content on a reader", "a reader " + h + " content=x", "line 1"},
		{"content on an admin", "# c\na admin " + h + " content=*", "line 2"},
		{"empty content", "a packager " + h + " content=", "line 1"},
		{"empty pattern", "a packager " + h + " content=a,,b", "line 1"},
		{"not content", "a packager " + h + " contents=a", "line 1"},
		{"bad name", "a/b reader " + h, "line 1"},
	} {
		_, err := Parse([]byte(c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %s", c.name, err, c.want)
		}
	}
}

// TestPackagerCredentials: a packager line may carry content ID patterns;
// without them it allows any content.
func TestPackagerCredentials(t *testing.T) {
	c, err := Parse([]byte("enc-1 packager " + HashSecret("p1") + " content=live-*,vod/*/hd,exact\nenc-2 PACKAGER " + HashSecret("p2") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	p1, ok := c.Match("p1")
	if !ok || p1.Role != RolePackager || len(p1.Contents) != 3 {
		t.Fatalf("%+v", p1)
	}
	for id, want := range map[string]bool{"live-1": true, "live-": true, "vod/2026/film/hd": true, "exact": true,
		"exact2": false, "live": false, "vod/2026/film/sd": false, "": false, "xlive-1": false} {
		if got := p1.AllowsContent(id); got != want {
			t.Errorf("enc-1 allows %q: %v", id, got)
		}
	}
	p2, _ := c.Match("p2")
	if p2.Contents != nil || !p2.AllowsContent("anything") {
		t.Errorf("a packager without patterns: %+v", p2)
	}
	line, err := PackagerLine("enc-3", "p3", []string{"a-*", "b"})
	if err != nil || line != "enc-3 packager "+HashSecret("p3")+" content=a-*,b" {
		t.Fatalf("%q %v", line, err)
	}
	if _, err := PackagerLine("enc-3", "p3", []string{"has space"}); err == nil {
		t.Error("a pattern with a space accepted")
	}
}

func TestMatchContent(t *testing.T) {
	for _, c := range []struct {
		pattern, id string
		want        bool
	}{
		{"*", "", true}, {"*", "x", true}, {"a*", "a", true}, {"a*a", "a", false}, {"a*a", "aa", true},
		{"a*b*c", "aXbYc", true}, {"a*b*c", "aXcYb", false}, {"a*b*b", "ab", false}, {"a*b*b", "abb", true},
		{"*x*x", "xx", true}, {"**", "q", true}, {"a", "A", false},
	} {
		if got := MatchContent(c.pattern, c.id); got != c.want {
			t.Errorf("MatchContent(%q, %q) = %v", c.pattern, c.id, got)
		}
	}
}

func TestLoadAndReloadCredentials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin-credentials")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("old reader " + HashSecret("old-secret") + "\n")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// A broken file keeps the previous set.
	write("new owner " + HashSecret("new-secret") + "\n")
	if err := c.Reload(); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("reload of a bad file: %v", err)
	}
	if _, ok := c.Match("old-secret"); !ok {
		t.Error("previous set lost after a failed reload")
	}
	// A good file replaces it.
	write("new admin " + HashSecret("new-secret") + "\n")
	if err := c.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Match("old-secret"); ok {
		t.Error("old secret still valid after reload")
	}
	if cr, ok := c.Match("new-secret"); !ok || cr.Role != RoleAdmin {
		t.Errorf("new secret: %+v", cr)
	}
	// A missing file keeps the set too.
	os.Remove(path)
	if err := c.Reload(); err == nil {
		t.Error("reload of a missing file succeeded")
	}
	if _, ok := c.Match("new-secret"); !ok {
		t.Error("set lost after a failed reload")
	}
	if _, err := Load(path); err == nil {
		t.Error("loading a missing file succeeded")
	}
	p, _ := Parse(nil)
	if err := p.Reload(); err == nil {
		t.Error("reload without a file succeeded")
	}
}

func TestReloadWhileMatching(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds")
	line := "a reader " + HashSecret("s") + "\n"
	os.WriteFile(path, []byte(line), 0o600)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				if _, ok := c.Match("s"); !ok {
					t.Error("match failed during reload")
					return
				}
			}
		})
	}
	for range 50 {
		if err := c.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

func TestHashSecret(t *testing.T) {
	// SHA-256("abc") from FIPS 180-2.
	if got := HashSecret("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("HashSecret = %s", got)
	}
}

func TestGenerateSecret(t *testing.T) {
	a, err := GenerateSecret(bytes.NewReader(bytes.Repeat([]byte{0xff}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	if a != "kda_"+strings.Repeat("_", 42)+"8" {
		t.Errorf("secret %q", a)
	}
	if _, err := GenerateSecret(bytes.NewReader(make([]byte, 31))); err == nil {
		t.Error("short random source accepted")
	}
	if _, err := GenerateSecret(errReader{}); err == nil {
		t.Error("failing random source accepted")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestLine(t *testing.T) {
	line, err := Line("ci-bot", RoleWriter, "kda_x")
	if err != nil || line != "ci-bot writer "+HashSecret("kda_x") {
		t.Fatalf("%q %v", line, err)
	}
	c, err := Parse([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if cr, ok := c.Match("kda_x"); !ok || cr.Name != "ci-bot" {
		t.Errorf("%+v", cr)
	}
	for _, bad := range []struct {
		name   string
		role   Role
		secret string
	}{{"", RoleReader, "s"}, {"a b", RoleReader, "s"}, {"a", "root", "s"}, {"a", RoleReader, ""}} {
		if _, err := Line(bad.name, bad.role, bad.secret); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if _, err := ParseRole("Exporter"); err != nil {
		t.Error(err)
	}
	if _, err := ParseRole("superuser"); err == nil {
		t.Error("unknown role accepted")
	}
}

func FuzzParseCredentials(f *testing.F) {
	f.Add([]byte(testCredentialsText()))
	f.Add([]byte("a reader " + HashSecret("s") + "\n#x\n\n"))
	f.Add([]byte("a reader zz\n"))
	f.Add([]byte("p packager " + HashSecret("s") + " content=live-*,x\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		c, err := Parse(text)
		if err != nil {
			return
		}
		// Whatever is accepted has valid names and roles, and only
		// packagers carry content patterns.
		for _, e := range c.cur.Load().entries {
			if !validName(e.Name) || e.Role.Permissions() == 0 || (e.Contents != nil && e.Role != RolePackager) {
				t.Fatalf("accepted %+v", e)
			}
		}
	})
}
