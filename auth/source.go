package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"
)

// Source is a place trusted token-verification keys are fetched from, other
// than certificate files: an Azure Key Vault certificate (package
// auth/keyvault), a JSON Web Key Set or an OpenID Connect issuer (package
// auth/jwks). Each implementation lives in a package of its own and keeps
// its client library there; auth sees only this interface.
//
// A [Trust] calls Fetch from its background refresh (see [Trust.Refresh]),
// never from the verification path: a token is only ever checked against
// keys already fetched.
type Source interface {
	// Kind is the kind of source: KindKeyVault, KindJWKS or KindOIDC.
	Kind() string
	// Name identifies the source in logs, metrics, readiness and the admin
	// API: its configured URL, which holds no secret.
	Name() string
	// Fetch returns every key the source trusts now. An error keeps the
	// keys of the last successful fetch. Its text goes to logs, to the
	// admin API and to /readyz: it holds no secret, on one line.
	Fetch(ctx context.Context) ([]Key, error)
}

// Key is one key as a Source reports it: a certificate, or a bare public
// key from a key set.
type Key struct {
	// Certificate, when the source holds certificates (Key Vault): its key
	// must be ECDSA P-256, and its validity window is the key's.
	Certificate *x509.Certificate
	// PublicKey is a bare key (a JSON Web Key) when Certificate is nil: it
	// must be ECDSA P-256, and has no validity window.
	PublicKey *ecdsa.PublicKey
	// KeyID is what a token's kid header names it by: the JSON Web Key's
	// kid, or the Key Vault key identifier of a certificate version. A bare
	// key must have one: it is chosen by it alone.
	KeyID string
	// Location is where exactly it came from (the Key Vault certificate
	// version's URL, the key set's URL).
	Location string
	// Current marks the certificate version Key Vault signs with when a key
	// identifier names no version.
	Current bool
	// Issuer, when set, binds the key to one token issuer: it verifies
	// only tokens whose iss is exactly Issuer (and that issuer must still
	// be a configured one). The keys of an OpenID Connect issuer carry
	// that issuer, and a source of KindOIDC must set it on every key.
	// Empty: the key verifies tokens of any configured issuer (a plain key
	// set, Key Vault, certificate files).
	Issuer string
}

// Remote is a Source with its refresh interval.
type Remote struct {
	Source Source
	// Refresh is the time between two fetches after a success (default
	// DefaultRefresh), each spread by ±10% (jitter) so that many instances
	// do not fetch in step. After a failure the source is tried again
	// sooner, after RetryMin, doubling up to Refresh.
	Refresh time.Duration
}

const (
	// DefaultRefresh is Remote.Refresh's default.
	DefaultRefresh = 10 * time.Minute
	// RetryMin is the first delay after a failed fetch.
	RetryMin = 5 * time.Second
	// DefaultUnknownKeyRefresh is TrustOptions.UnknownKeyRefresh's default.
	DefaultUnknownKeyRefresh = 30 * time.Second
	// DefaultFetchTimeout is TrustOptions.FetchTimeout's default.
	DefaultFetchTimeout = 30 * time.Second
)

// SourceStatus is what a Trust knows of one of its sources, for the admin
// API, logs and readiness.
type SourceStatus struct {
	Kind string // KindFile, KindKeyVault, KindJWKS or KindOIDC
	Name string // the paths of the files (comma-separated), or the source's URL
	// Refresh is the interval between fetches (remote sources), or between
	// checks of the files for changes (0: on SIGHUP only).
	Refresh time.Duration
	// Keys is how many keys of this source are trusted now: those of its
	// last successful fetch or load.
	Keys        int
	LastAttempt time.Time // zero before the first attempt
	LastSuccess time.Time // zero while it never succeeded
	// LastError is why the last attempt failed; "" when it succeeded.
	LastError string
	// Failures counts the attempts that failed since the last success.
	Failures int
}

// Healthy reports whether the last attempt succeeded.
func (s SourceStatus) Healthy() bool { return s.LastError == "" && !s.LastSuccess.IsZero() }

// describe says, on one line, how a source that is not healthy stands.
func (s SourceStatus) describe() string {
	name := s.Kind + " " + s.Name
	if s.LastSuccess.IsZero() {
		return fmt.Sprintf("%s: never loaded (%d failed attempts, the last at %s): %s", name, s.Failures,
			s.LastAttempt.UTC().Format(time.RFC3339), s.LastError)
	}
	return fmt.Sprintf("%s: %d failed attempts since %s: %s; keeping the last good set (%d keys, loaded at %s)", name, s.Failures,
		s.LastSuccess.UTC().Format(time.RFC3339), s.LastError, s.Keys, s.LastSuccess.UTC().Format(time.RFC3339))
}

// remote is a Remote with its state in a Trust.
type remote struct {
	Remote
	wake chan struct{} // a fetch is due now (unknown key); buffered 1
	// lastWake is the Unix nanoseconds of the last wake, for the rate
	// limit of unknown-key refreshes.
	lastWake atomic.Int64

	// Guarded by Trust.mu.
	keys   []Certificate
	status SourceStatus
}

// fetchRemote fetches r once and installs what it got; a failure keeps r's
// previous keys. It returns whether the fetch succeeded.
func (t *Trust) fetchRemote(ctx context.Context, r *remote) bool {
	ctx, cancel := context.WithTimeout(ctx, t.fetchTimeout)
	defer cancel()
	keys, err := r.Source.Fetch(ctx)
	var certs []Certificate
	if err == nil {
		certs, err = t.convert(r.Source, keys)
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	r.status.LastAttempt = now
	if err != nil {
		r.status.LastError = oneLine(err.Error())
		r.status.Failures++
		t.metrics.observe(r.Source.Name(), false)
		if r.status.LastSuccess.IsZero() {
			t.log.Warn("token trust source failed; it has no keys yet", "kind", r.Source.Kind(), "source", r.Source.Name(),
				"err", r.status.LastError, "failures", r.status.Failures)
		} else {
			t.log.Warn("token trust source failed; keeping its last good keys", "kind", r.Source.Kind(), "source", r.Source.Name(),
				"err", r.status.LastError, "failures", r.status.Failures, "kept", len(r.keys), "since", r.status.LastSuccess)
		}
		return false
	}
	if r.status.Failures > 0 {
		t.log.Info("token trust source recovered", "kind", r.Source.Kind(), "source", r.Source.Name(), "failures", r.status.Failures)
	}
	r.keys = certs
	r.status.Keys = len(certs)
	r.status.LastSuccess = now
	r.status.LastError = ""
	r.status.Failures = 0
	t.metrics.observe(r.Source.Name(), true)
	t.installLocked(false)
	return true
}

// convert turns what a source reported into trust entries, checking each
// key; a bad key fails the whole fetch (and so keeps the last good set).
func (t *Trust) convert(src Source, keys []Key) ([]Certificate, error) {
	out := make([]Certificate, 0, len(keys))
	for i, k := range keys {
		var c Certificate
		switch {
		case k.Certificate != nil:
			var err error
			if c, err = newCertificate(k.Certificate, k.Location); err != nil {
				return nil, fmt.Errorf("key %d (%s): %w", i, k.Location, err)
			}
		case k.PublicKey != nil:
			if k.PublicKey.Curve != elliptic.P256() {
				return nil, fmt.Errorf("key %d (kid %q): not an ECDSA P-256 key", i, k.KeyID)
			}
			if k.KeyID == "" {
				return nil, fmt.Errorf("key %d: a bare key needs a kid", i)
			}
			c = Certificate{PublicKey: k.PublicKey, Source: k.Location}
		default:
			return nil, fmt.Errorf("key %d: neither a certificate nor a public key", i)
		}
		// Security invariant: a key of an OpenID Connect issuer is bound to
		// that issuer. One that comes without it fails the fetch rather
		// than verifying the tokens of every configured issuer.
		if src.Kind() == KindOIDC && k.Issuer == "" {
			return nil, fmt.Errorf("key %d (kid %q): a key of an OpenID Connect issuer must name its issuer", i, k.KeyID)
		}
		c.Kind, c.KeyID, c.Current, c.Issuer = src.Kind(), k.KeyID, k.Current, k.Issuer
		if c.Source == "" {
			c.Source = src.Name()
		}
		out = append(out, c)
	}
	sortCertificates(out)
	return out, nil
}

// Refresh fetches every remote source in the background until ctx ends:
// again after each source's refresh interval (with jitter) once it
// succeeded, sooner after a failure (RetryMin, doubling up to the
// interval), and at once when a token names a key no trusted key matches
// (at most once per TrustOptions.UnknownKeyRefresh per source). A failed
// fetch keeps the source's last good keys. It returns when ctx ends; a
// Trust without remote sources returns at once.
func (t *Trust) Refresh(ctx context.Context) {
	done := make(chan struct{}, len(t.remotes))
	for _, r := range t.remotes {
		go func() {
			defer func() { done <- struct{}{} }()
			t.refreshLoop(ctx, r)
		}()
	}
	for range t.remotes {
		<-done
	}
}

func (t *Trust) refreshLoop(ctx context.Context, r *remote) {
	t.mu.Lock()
	failures := r.status.Failures
	t.mu.Unlock()
	for {
		delay := nextDelay(r.Refresh, failures)
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-r.wake:
			timer.Stop()
		}
		if t.fetchRemote(ctx, r) {
			failures = 0
		} else {
			failures++
		}
	}
}

// nextDelay is the time until the next fetch: interval ±10% after a
// success, RetryMin·2^(failures-1) (at most interval) ±10% after failures.
func nextDelay(interval time.Duration, failures int) time.Duration {
	d := interval
	if failures > 0 {
		d = RetryMin
		for i := 1; i < failures && d < interval; i++ {
			d *= 2
		}
		d = min(d, interval)
	}
	return jitter(d)
}

// jitter spreads d by ±10%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	spread := int64(d) / 10
	if spread <= 0 {
		return d
	}
	return d - time.Duration(spread) + time.Duration(rand.Int64N(2*spread+1))
}

// unknownKey is told by the verifier that a token named a key no trusted
// key matches: the remote sources are fetched again at once, each at most
// once per unknownKeyRefresh. It never blocks and never fetches itself:
// the token that triggered it is refused; a later one may find its key.
func (t *Trust) unknownKey() {
	if len(t.remotes) == 0 {
		return
	}
	now := t.now().UnixNano()
	for _, r := range t.remotes {
		last := r.lastWake.Load()
		if last != 0 && now-last < int64(t.unknownKeyRefresh) {
			continue
		}
		if !r.lastWake.CompareAndSwap(last, now) {
			continue
		}
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// oneLine keeps the first line of s, at most 400 bytes.
func oneLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = strings.TrimSpace(s[:i]) + " ..."
	}
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}

// JWKThumbprint returns the RFC 7638 thumbprint of the public key (SHA-256
// over its canonical JSON Web Key), base64url without padding: how a bare
// key from a key set is named in listings.
func (c Certificate) JWKThumbprint() string {
	sum := jwkThumbprint(c.PublicKey)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func jwkThumbprint(pub *ecdsa.PublicKey) [32]byte {
	if pub == nil {
		return [32]byte{}
	}
	raw, err := pub.Bytes() // 0x04 || X || Y, 32 bytes each for P-256
	if err != nil || len(raw) != 65 {
		return [32]byte{}
	}
	enc := base64.RawURLEncoding.EncodeToString
	canonical := `{"crv":"P-256","kty":"EC","x":"` + enc(raw[1:33]) + `","y":"` + enc(raw[33:]) + `"}`
	return sha256.Sum256([]byte(canonical))
}

// errNoValidKey is the readiness error when no trusted key is valid.
var errNoValidKey = errors.New(NoValidTokenCertificate)

// NoValidTokenCertificate is the reason /readyz gives, and the warning
// --check-config prints, when no trusted key is currently valid: no token
// can verify.
const NoValidTokenCertificate = "no_valid_token_certificate"
