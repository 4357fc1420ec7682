package auth

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// defaultWatchInterval is used by Watch when it is given no positive interval.
const defaultWatchInterval = 10 * time.Second

// trusted is one certificate of a trust set with what the verifier needs
// precomputed.
type trusted struct {
	cert      Certificate
	sha256Hex string // Claims.SigningKey
}

// trustSet is an immutable set of trusted certificates with lookup maps keyed
// by the raw thumbprint bytes. It is built once per (re)load and never
// modified afterwards, so the verifier reads it without locks.
type trustSet struct {
	certs    []*trusted // sorted by NotAfter
	bySHA1   map[[20]byte]*trusted
	bySHA256 map[[32]byte]*trusted
}

func newTrustSet(certs []Certificate) *trustSet {
	s := &trustSet{
		certs:    make([]*trusted, 0, len(certs)),
		bySHA1:   make(map[[20]byte]*trusted, len(certs)),
		bySHA256: make(map[[32]byte]*trusted, len(certs)),
	}
	for _, c := range certs {
		t := &trusted{cert: c, sha256Hex: hex.EncodeToString(c.SHA256[:])}
		s.certs = append(s.certs, t)
		s.bySHA1[c.SHA1] = t
		s.bySHA256[c.SHA256] = t
	}
	return s
}

// Trust is the current set of trusted token-signing certificates, loaded
// from a fixed list of files and directories.
//
// The set is immutable and replaced as a whole (an atomic pointer swap) on
// reload, so verification reads it without locks and never touches the
// filesystem. A failed reload keeps the previous set.
type Trust struct {
	paths []string
	log   *slog.Logger
	now   func() time.Time // only for the statuses written to the log

	set atomic.Pointer[trustSet]

	mu    sync.Mutex // serialises reloads; guards stamp
	stamp string     // fingerprint of paths taken just before the last load attempt
}

// NewTrust loads the certificates in paths (see [LoadCertificates]) and logs
// each of them. It fails if the initial load fails. A nil log discards output.
func NewTrust(paths []string, log *slog.Logger) (*Trust, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Trust{
		paths: slices.Clone(paths),
		log:   log,
		now:   time.Now,
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	stamp := fingerprint(t.paths)
	certs, err := LoadCertificates(t.paths)
	if err != nil {
		return nil, err
	}
	t.stamp = stamp
	t.install(certs)
	return t, nil
}

// Reload loads the certificates again from the same paths. On success it
// replaces the set and logs each certificate; on failure it keeps the previous
// set, logs why at Warn and returns the error.
func (t *Trust) Reload() error {
	stamp := fingerprint(t.paths)
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reloadLocked(stamp)
}

// reloadLocked loads and installs a new set. t.mu must be held. The stamp is
// recorded whatever the outcome, so an unchanged broken file is reported once
// rather than on every poll; any later change to the files is noticed again.
func (t *Trust) reloadLocked(stamp string) error {
	t.stamp = stamp
	certs, err := LoadCertificates(t.paths)
	if err != nil {
		t.log.Warn("reload of trusted token certificates failed; keeping the previous set",
			"err", err, "kept", len(t.set.Load().certs))
		return err
	}
	t.install(certs)
	return nil
}

// install swaps in a new set and logs it. t.mu must be held.
func (t *Trust) install(certs []Certificate) {
	t.set.Store(newTrustSet(certs))
	t.log.Info("trusted token certificates loaded", "count", len(certs), "paths", strings.Join(t.paths, ","))
	now := t.now()
	t.LogCertificates(now, DefaultLeeway)
	valid := false
	for _, c := range certs {
		valid = valid || c.Status(now, DefaultLeeway) == statusValid
	}
	if !valid {
		t.log.Warn("no trusted token certificate is currently valid; every token will be refused")
	}
}

// Watch polls the paths every interval and calls Reload when anything
// changed. It compares names, sizes, modification times and resolved symlink
// targets, so a Kubernetes secret volume's atomic symlink swap is noticed. It
// returns when ctx ends. A non-positive interval means 10 seconds.
func (t *Trust) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = defaultWatchInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.poll()
		}
	}
}

// poll reloads if the files changed since the last load attempt.
func (t *Trust) poll() {
	stamp := fingerprint(t.paths)
	t.mu.Lock()
	defer t.mu.Unlock()
	if stamp == t.stamp {
		return
	}
	t.log.Info("trusted token certificate files changed; reloading")
	_ = t.reloadLocked(stamp) // reloadLocked logs the failure
}

// Certificates returns a copy of the current set, sorted by NotAfter.
func (t *Trust) Certificates() []Certificate {
	s := t.set.Load()
	out := make([]Certificate, len(s.certs))
	for i, c := range s.certs {
		out[i] = c.cert
	}
	return out
}

// LogCertificates logs each current certificate at Info with its status at
// now, the validity window widened by leeway.
func (t *Trust) LogCertificates(now time.Time, leeway time.Duration) {
	for _, c := range t.set.Load().certs {
		t.log.Info("trusted token certificate",
			"subject", c.cert.Subject,
			"x5t", c.cert.X5T(),
			"sha256", c.sha256Hex,
			"notBefore", c.cert.NotBefore,
			"notAfter", c.cert.NotAfter,
			"status", c.cert.Status(now, leeway),
			"source", c.cert.Source,
		)
	}
}

// fingerprint describes the files LoadCertificates would read: for every
// path, and every non-dot entry of a directory, the name, the resolved
// symlink target, the size and the modification time (symlinks followed).
// Errors become part of the fingerprint, so a path that appears or goes away
// is a change too.
func fingerprint(paths []string) string {
	var b strings.Builder
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(&b, "%s\x00err %v\n", p, err)
			continue
		}
		if !fi.IsDir() {
			stampFile(&b, p, fi)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			fmt.Fprintf(&b, "%s\x00err %v\n", p, err)
			continue
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			name := filepath.Join(p, e.Name())
			fi, err := os.Stat(name)
			if err != nil {
				fmt.Fprintf(&b, "%s\x00err %v\n", name, err)
				continue
			}
			stampFile(&b, name, fi)
		}
	}
	return b.String()
}

func stampFile(b *strings.Builder, name string, fi os.FileInfo) {
	target, err := filepath.EvalSymlinks(name)
	if err != nil {
		target = "?"
	}
	fmt.Fprintf(b, "%s\x00%s\x00%d\x00%d\x00%v\n", name, target, fi.Size(), fi.ModTime().UnixNano(), fi.Mode())
}
