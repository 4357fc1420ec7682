package auth

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/waittest"
)

// logBuffer collects log output; Watch logs from another goroutine.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

func shas(certs []Certificate) [][32]byte {
	out := make([][32]byte, len(certs))
	for i, c := range certs {
		out[i] = c.SHA256
	}
	return out
}

func TestTrustReload(t *testing.T) {
	a := newTestCert(t, "a", testNow, 48*time.Hour)
	b := newTestCert(t, "b", testNow, 24*time.Hour)
	dir := t.TempDir()
	writeFile(t, dir, "a.pem", a.certPEM)
	log, logs := newLogger()
	tr, err := NewTrust([]string{dir}, log)
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Certificates(); len(got) != 1 || got[0].SHA256 != a.c.SHA256 {
		t.Fatalf("initial set %v", shas(got))
	}
	if !strings.Contains(logs.String(), "x5t="+a.c.X5T()) {
		t.Errorf("initial load did not log the certificate:\n%s", logs)
	}

	// A new file is picked up, and the set is sorted by NotAfter.
	writeFile(t, dir, "b.pem", b.certPEM)
	if err := tr.Reload(); err != nil {
		t.Fatal(err)
	}
	got := tr.Certificates()
	if len(got) != 2 || got[0].SHA256 != b.c.SHA256 || got[1].SHA256 != a.c.SHA256 {
		t.Fatalf("after reload %d certificates, want b then a", len(got))
	}

	// A broken file fails the reload, which keeps the previous set.
	writeFile(t, dir, "broken.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	if err := tr.Reload(); err == nil {
		t.Fatal("Reload with a broken file succeeded")
	}
	if got := tr.Certificates(); len(got) != 2 {
		t.Fatalf("after failed reload %d certificates, want the previous 2", len(got))
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "broken.pem") {
		t.Errorf("failed reload not logged at Warn:\n%s", logs)
	}

	// Fixing it and removing a file works again.
	if err := os.Remove(filepath.Join(dir, "broken.pem")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "a.pem")); err != nil {
		t.Fatal(err)
	}
	if err := tr.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := tr.Certificates(); len(got) != 1 || got[0].SHA256 != b.c.SHA256 {
		t.Fatalf("after removal %v", shas(got))
	}
}

func TestTrustCertificatesIsACopy(t *testing.T) {
	f := newFixture(t)
	got := f.trust.Certificates()
	got[0] = Certificate{}
	if f.trust.Certificates()[0].Subject == "" {
		t.Fatal("Certificates returned the trust set itself")
	}
	for i := 1; i < len(got); i++ {
		if got[i].NotAfter.Before(got[i-1].NotAfter) {
			t.Fatal("not sorted by NotAfter")
		}
	}
}

func TestNewTrustFails(t *testing.T) {
	if _, err := NewTrust([]string{t.TempDir()}, nil); err == nil {
		t.Fatal("NewTrust on an empty directory succeeded")
	}
	if _, err := NewTrust(nil, nil); err == nil {
		t.Fatal("NewTrust with no paths succeeded")
	}
}

func TestTrustLogCertificates(t *testing.T) {
	f := newFixture(t)
	log, logs := newLogger()
	f.trust.log = log
	f.trust.LogCertificates(testNow, DefaultLeeway)
	out := logs.String()
	for _, want := range []string{
		`subject="CN=token-signer-a"`, "x5t=" + f.a.c.X5T(), "sha256=" + f.a.sha256Hex(),
		"status=valid", "status=expired", "status=not_yet_valid", "notAfter=",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "level=INFO"); n != 4 {
		t.Errorf("%d Info lines, want 4", n)
	}
}

// watch runs Watch until the test ends and checks that it returns.
func watch(t *testing.T, tr *Trust) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr.Watch(ctx, 10*time.Millisecond)
	}()
	t.Cleanup(func() {
		cancel()
		waittest.Receive(t, done, "Watch to return after its context ended")
	})
}

func TestTrustWatch(t *testing.T) {
	a := newTestCert(t, "a", testNow, 48*time.Hour)
	b := newTestCert(t, "b", testNow, 24*time.Hour)
	c := newTestCert(t, "c", testNow, 72*time.Hour)
	dir := t.TempDir()
	writeFile(t, dir, "a.pem", a.certPEM)
	log, logs := newLogger()
	tr, err := NewTrust([]string{dir}, log)
	if err != nil {
		t.Fatal(err)
	}
	watch(t, tr)

	writeFile(t, dir, "b.pem", b.certPEM)
	waittest.For(t, "the new certificate", func() bool { return len(tr.Certificates()) == 2 })

	// A broken file is reported once and the set is kept.
	writeFile(t, dir, "broken.pem", []byte("junk"))
	waittest.For(t, "the failed reload", func() bool { return strings.Contains(logs.String(), "level=WARN") })
	if n := len(tr.Certificates()); n != 2 {
		t.Fatalf("%d certificates after a failed reload, want 2", n)
	}

	// Replacing the broken file's contents in place is noticed too.
	writeFile(t, dir, "broken.pem", c.certPEM)
	waittest.For(t, "the repaired file", func() bool { return len(tr.Certificates()) == 3 })
}

// TestTrustWatchKubernetesSwap mimics how the kubelet updates a secret
// volume: files are symlinks through ..data, which is atomically repointed
// at a new timestamped directory.
func TestTrustWatchKubernetesSwap(t *testing.T) {
	a := newTestCert(t, "a", testNow, 48*time.Hour)
	b := newTestCert(t, "b", testNow, 24*time.Hour)
	dir := t.TempDir()
	version := func(name string, tc testCert) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name), "tls.crt", tc.certPEM)
		writeFile(t, filepath.Join(dir, name), "tls.key", tc.keyPEM)
	}
	version("..2026_03_01_12_00_00.1", a)
	if err := os.Symlink("..2026_03_01_12_00_00.1", filepath.Join(dir, "..data")); err != nil {
		t.Skip("symlinks unsupported:", err)
	}
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := NewTrust([]string{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Certificates(); len(got) != 1 || got[0].SHA256 != a.c.SHA256 {
		t.Fatalf("initial set %v", shas(got))
	}
	watch(t, tr)

	version("..2026_03_01_13_00_00.2", b)
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink("..2026_03_01_13_00_00.2", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	waittest.For(t, "the swapped certificate", func() bool {
		got := tr.Certificates()
		return len(got) == 1 && got[0].SHA256 == b.c.SHA256
	})
}
