package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestConfigEnvironmentAndFlags(t *testing.T) {
	env := map[string]string{
		"KD_STORE":          "redis://127.0.0.1:6390/2",
		"KD_LISTEN":         "127.0.0.1:9000",
		"KD_TOKEN_ISSUER":   "a,b",
		"KD_TOKEN_LEEWAY":   "30s",
		"KD_CORS_ORIGINS":   "https://x.example.com",
		"KD_KEK":            "k1 AAAA",
		"KD_REDIS_PASSWORD": "pw",
	}
	c, err := parseConfig([]string{"kd", "--listen", "127.0.0.1:9001"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Store != env["KD_STORE"] || c.Listen != "127.0.0.1:9001" || c.TokenLeeway != 30*time.Second ||
		strings.Join(c.TokenIssuers, "|") != "a|b" || len(c.CORSOrigins) != 1 || c.kekText != "k1 AAAA" || c.redisPassword != "pw" {
		t.Fatalf("config %+v", c)
	}
	if c.storeFromFlag {
		t.Fatal("store came from the environment, not a flag")
	}
	if _, err := parseConfig([]string{"kd"}, func(k string) string {
		if k == "KD_TOKEN_LEEWAY" {
			return "soon"
		}
		return ""
	}, io.Discard); err == nil || !strings.Contains(err.Error(), "KD_TOKEN_LEEWAY") {
		t.Fatalf("bad env value: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	base := func() *config {
		// The default store is under --data-dir, which must exist.
		c, err := parseConfig([]string{"kd", "--data-dir", t.TempDir(), "--token-certs", "/x", "--token-issuer", "i", "--token-audience", "a", "--kek-file", "/k"}, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := base().validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	cases := map[string]struct {
		mut  func(c *config)
		want string
	}{
		"no certs":                   {func(c *config) { c.TokenCerts = nil }, "--token-certs"},
		"no issuer":                  {func(c *config) { c.TokenIssuers = nil }, "--token-issuer"},
		"no audience":                {func(c *config) { c.TokenAudience = "" }, "--token-audience"},
		"no kek":                     {func(c *config) { c.KEKFile = "" }, "key-encryption key"},
		"leeway too big":             {func(c *config) { c.TokenLeeway = 6 * time.Minute }, "--token-leeway"},
		"bad listen":                 {func(c *config) { c.Listen = "8080" }, "--listen"},
		"bad log level":              {func(c *config) { c.LogLevel = "loud" }, "--log-level"},
		"empty bolt path":            {func(c *config) { c.Store = "bolt:" }, "bolt:PATH"},
		"password in flag":           {func(c *config) { c.Store = "redis://u:secret@h:1/0"; c.storeFromFlag = true }, "password"},
		"recipient cert without key": {func(c *config) { c.CPIXRecipientCert = "/c.pem" }, "--cpix-recipient-key"},
		"recipient key without cert": {func(c *config) { c.CPIXRecipientKey = "/k.pem" }, "--cpix-recipient-cert"},
	}
	for name, tc := range cases {
		c := base()
		tc.mut(c)
		err := c.validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %s", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error repeats the password: %v", name, err)
		}
	}
	// The same URL from the environment is fine.
	c := base()
	c.Store = "redis://u:secret@h:1/0"
	if err := c.validate(); err != nil {
		t.Errorf("password from KD_STORE refused: %v", err)
	}
}

func TestRedactStore(t *testing.T) {
	for in, want := range map[string]string{
		"redis://u:secret@h:1/0":            "redis://u:xxxxx@h:1/0",
		"redis://:secret@h:1/0":             "redis://:xxxxx@h:1/0",
		"redis+sentinel://h1:1,h2:2/m":      "redis+sentinel://h1:1,h2:2/m",
		"bolt:/var/lib/keydelivery/keys.db": "bolt:/var/lib/keydelivery/keys.db",
	} {
		if got := redactStore(in); got != want {
			t.Errorf("redactStore(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDevModeGeneratesOnce starts --dev twice on one data dir: the first
// start generates the material (owner-only files) and prints the dev
// banner, the second reuses it unchanged.
func TestDevModeGeneratesOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	args := []string{"keydelivery", "--dev", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--audit-log", filepath.Join(dir, "audit.log")}
	s := start(t, args, nil)
	out := s.stdout.String()
	for _, want := range []string{"DEV MODE", "DEVELOPMENT ONLY", "kdctl keys create", "kdctl token mint", "curl"} {
		if !strings.Contains(out, want) {
			t.Errorf("dev banner lacks %q:\n%s", want, out)
		}
	}
	m := devPaths(dir)
	before := map[string][]byte{}
	for _, f := range []string{m.CertFile, m.KeyFile, m.KEKFile, m.CredentialsFile, m.AdminTokenFile} {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatalf("dev material %s: %v", f, err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %o, want 600", f, info.Mode().Perm())
		}
		before[f], _ = os.ReadFile(f)
	}
	if _, err := os.Stat(filepath.Join(dir, "keys.db")); err != nil {
		t.Errorf("dev store: %v", err)
	}
	s.stop(t)
	s2 := start(t, args, nil)
	for f, b := range before {
		now, _ := os.ReadFile(f)
		if !bytes.Equal(now, b) {
			t.Errorf("%s changed on the second start", f)
		}
	}
	secret, _ := os.ReadFile(m.AdminTokenFile)
	if strings.Contains(s2.stderr.String(), strings.TrimSpace(string(secret))) {
		t.Error("the admin secret reached the log")
	}
}

func TestCheckConfig(t *testing.T) {
	m := newMaterial(t)
	var out, errOut syncBuffer
	args := append(m.args("bolt:"+filepath.Join(m.dir, "keys.db")), "--check-config")
	if err := run(t.Context(), args, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("check-config: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "configuration ok") {
		t.Fatalf("check-config printed %q", out.String())
	}
	if _, err := os.Stat(filepath.Join(m.dir, "keys.db")); err == nil {
		t.Error("check-config opened the store")
	}
	// A broken KEK file is refused.
	if err := os.WriteFile(m.kekFile, []byte("k1 short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(t.Context(), args, func(string) string { return "" }, &out, &errOut); err == nil || !strings.Contains(err.Error(), "kek") {
		t.Fatalf("check-config with a bad KEK: %v", err)
	}
}

// TestWrongKEKRefused: a store written under one KEK refuses to start under
// another KEK with the same ID.
func TestWrongKEKRefused(t *testing.T) {
	m := newMaterial(t)
	db := "bolt:" + filepath.Join(m.dir, "keys.db")
	s := start(t, m.args(db), nil)
	s.stop(t)
	other := newMaterial(t)
	kek, _ := os.ReadFile(other.kekFile)
	if err := os.WriteFile(m.kekFile, kek, 0o600); err != nil {
		t.Fatal(err)
	}
	err := run(t.Context(), m.args(db), func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "kek") {
		t.Fatalf("start with the wrong KEK: %v", err)
	}
}

// TestTuneGC: without GOGC in the environment the server sets the
// collector's target to defaultGCPercent; with GOGC set it leaves the
// runtime's value alone.
func TestTuneGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	current := func() int { p := debug.SetGCPercent(100); debug.SetGCPercent(p); return p }

	if got := tuneGC(func(string) string { return "" }); got != defaultGCPercent || current() != defaultGCPercent {
		t.Fatalf("without GOGC: tuneGC = %d, GC percent %d, want %d", got, current(), defaultGCPercent)
	}
	debug.SetGCPercent(150) // what the runtime would have applied for GOGC=150
	env := func(k string) string {
		if k == "GOGC" {
			return "150"
		}
		return ""
	}
	if got := tuneGC(env); got != 150 || current() != 150 {
		t.Fatalf("with GOGC=150: tuneGC = %d, GC percent %d, want 150", got, current())
	}
}
