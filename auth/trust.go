package auth

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// defaultWatchInterval is used by Watch when it is given no positive interval.
const defaultWatchInterval = 10 * time.Second

// trusted is one key of a trust set with what the verifier needs
// precomputed.
type trusted struct {
	cert      Certificate
	sha256Hex string // Claims.SigningKey: the certificate's SHA-256, or a bare key's RFC 7638 thumbprint
}

// trustSet is an immutable set of trusted keys with lookup maps keyed by
// the raw thumbprint bytes and by key identifier. It is built once per
// change and never modified afterwards, so the verifier reads it without
// locks.
type trustSet struct {
	// certs are the certificates (files and Key Vault), sorted by
	// NotAfter: the candidates when a token's header names no key. Bare
	// keys from key sets are chosen by kid only, so they are not here.
	certs    []*trusted
	all      []*trusted // certs, then the bare keys
	bySHA1   map[[20]byte]*trusted
	bySHA256 map[[32]byte]*trusted
	// byKID holds every key with a KeyID, by that exact string: several
	// when sources share a kid (two identity providers that both number
	// their keys "1"), in the order of the certificates.
	byKID map[string][]*trusted
	// byVersion holds the Key Vault certificate versions by "name/version"
	// (lower case), and current the version of each name that Key Vault
	// signs with (Key Vault source only), by name (lower case).
	byVersion map[string]*trusted
	current   map[string]*trusted
	// stamp describes the set's content, to tell whether a new set differs.
	stamp string
	// unknown is told when a token names a key the set lacks (nil: nobody).
	unknown func()
}

// bare reports whether c is a bare key from a key set (no certificate).
func (c Certificate) bare() bool { return c.Kind == KindJWKS || c.Kind == KindOIDC }

func newTrustSet(certs []Certificate) *trustSet {
	s := &trustSet{
		certs:     make([]*trusted, 0, len(certs)),
		bySHA1:    make(map[[20]byte]*trusted, len(certs)),
		bySHA256:  make(map[[32]byte]*trusted, len(certs)),
		byKID:     make(map[string][]*trusted),
		byVersion: make(map[string]*trusted),
		current:   make(map[string]*trusted),
	}
	var bare []*trusted
	var stamp strings.Builder
	for _, c := range certs {
		t := &trusted{cert: c, sha256Hex: hex.EncodeToString(c.SHA256[:])}
		fmt.Fprintf(&stamp, "%s\x00%s\x00%s\x00%x\x00%t\x00%s\x00", c.Kind, c.Source, c.KeyID, c.SHA256, c.Current, c.Issuer)
		if c.bare() {
			sum := jwkThumbprint(c.PublicKey)
			t.sha256Hex = hex.EncodeToString(sum[:])
			fmt.Fprintf(&stamp, "%x", sum)
			bare = append(bare, t)
		} else {
			s.certs = append(s.certs, t)
			s.bySHA1[c.SHA1] = t
			s.bySHA256[c.SHA256] = t
		}
		stamp.WriteByte('\n')
		if c.KeyID == "" {
			continue
		}
		s.byKID[c.KeyID] = append(s.byKID[c.KeyID], t)
		if name, version, ok := ParseKeyVaultKeyID(c.KeyID); ok && version != "" && !c.bare() {
			k := strings.ToLower(name + "/" + version)
			if _, dup := s.byVersion[k]; !dup {
				s.byVersion[k] = t
			}
			if c.Current && c.Kind == KindKeyVault {
				s.current[strings.ToLower(name)] = t
			}
		}
	}
	s.all = append(append(make([]*trusted, 0, len(certs)), s.certs...), bare...)
	s.stamp = stamp.String()
	return s
}

// lookupKeyID finds the key a token's kid names when it is not a
// thumbprint: a key whose KeyID is exactly kid (a JSON Web Key's kid, a Key
// Vault key identifier); else, for a Key Vault key identifier
// (https://<vault>/keys/<name>/<version>), the certificate version with
// that name and version, whatever the vault's host name (a private
// endpoint, another cloud); and for one without a version, the version Key
// Vault signs with, when the certificate is trusted through the Key Vault
// source. Nothing found tells the Trust (unknown), so that its remote
// sources look for a new key.
//
// Of several keys with the kid, the one bound to iss (the token's issuer,
// not yet verified) is chosen, else the first not bound to an issuer, else
// the first. Choosing by an unverified iss is safe: the signature must
// still verify with the key chosen, and a bound key verifies only tokens
// whose iss is its issuer.
func (s *trustSet) lookupKeyID(kid, iss string) *trusted {
	if ts := s.byKID[kid]; len(ts) > 0 {
		return pickByIssuer(ts, iss)
	}
	if name, version, ok := ParseKeyVaultKeyID(kid); ok {
		var t *trusted
		if version != "" {
			t = s.byVersion[strings.ToLower(name+"/"+version)]
		} else {
			t = s.current[strings.ToLower(name)]
		}
		if t != nil {
			return t
		}
	}
	return nil
}

// pickByIssuer is the key of ts bound to iss, else the first one bound
// to no issuer, else the first.
func pickByIssuer(ts []*trusted, iss string) *trusted {
	var unbound *trusted
	for _, t := range ts {
		switch {
		case t.cert.Issuer == "":
			if unbound == nil {
				unbound = t
			}
		case t.cert.Issuer == iss:
			return t
		}
	}
	if unbound != nil {
		return unbound
	}
	return ts[0]
}

// missed is told by the verifier why the header's key could not be
// chosen: an unknown key prompts the Trust's remote sources to look for it.
func (s *trustSet) missed(e *Error) {
	if e.Reason == ReasonUnknownSigningKey && s.unknown != nil {
		s.unknown()
	}
}

// ParseKeyVaultKeyID reads an Azure Key Vault key identifier,
// https://<vault host>/keys/<name>[/<version>], as Key Vault reports it
// for a certificate's key (the certificate's "kid") and in the answer of
// its sign operation. version is "" when the identifier names none.
func ParseKeyVaultKeyID(s string) (name, version string, ok bool) {
	rest, found := strings.CutPrefix(s, "https://")
	if !found || len(s) > 512 {
		return "", "", false
	}
	host, path, found := strings.Cut(rest, "/")
	if !found || host == "" {
		return "", "", false
	}
	parts := strings.Split(strings.TrimSuffix(path, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] != "keys" || !validKeyVaultName(parts[1]) {
		return "", "", false
	}
	if len(parts) == 3 {
		if !validKeyVaultVersion(parts[2]) {
			return "", "", false
		}
		version = parts[2]
	}
	return parts[1], version, true
}

// validKeyVaultName: Key Vault object names are 1 to 127 letters, digits
// and hyphens.
func validKeyVaultName(s string) bool {
	if s == "" || len(s) > 127 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// validKeyVaultVersion: a version is 32 hex digits.
func validKeyVaultVersion(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// Trust is the current set of trusted token-verification keys, from
// certificate files and directories (--token-certs) and from remote
// sources (Azure Key Vault certificates, JSON Web Key Sets, OpenID Connect
// issuers), each entry carrying its source, validity and status.
//
// The set is immutable and replaced as a whole (an atomic pointer swap)
// when the files are reloaded or a remote source brings other keys, so
// verification reads it without locks and never touches the filesystem or
// the network. A failed reload or fetch keeps that source's previous keys.
type Trust struct {
	paths  []string
	log    *slog.Logger
	now    func() time.Time // for statuses in logs, readiness and the rate limit of unknown-key refreshes
	leeway time.Duration

	set atomic.Pointer[trustSet]

	remotes           []*remote // fixed at construction
	fetchTimeout      time.Duration
	unknownKeyRefresh time.Duration
	metrics           *trustMetrics // nil without a Registerer

	mu         sync.Mutex    // serialises loads and installs; guards stamp, files, fileStatus and the remotes' keys and status
	stamp      string        // fingerprint of paths taken just before the last load attempt
	files      []Certificate // the last good load of paths
	fileStatus SourceStatus
}

// TrustOptions configures NewTrustWith.
type TrustOptions struct {
	// Paths are certificate files and directories (see LoadCertificates).
	// They must load, and hold at least one certificate, when given.
	Paths []string
	// Remotes are the remote sources, fetched once by NewTrustWith and then
	// by Refresh. At least one of Paths and Remotes is required.
	Remotes []Remote
	// Log receives the loads, fetches and changes (default: discarded).
	Log *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Leeway widens validity windows for the statuses that are logged and
	// for readiness (default DefaultLeeway), as the verifier does.
	Leeway time.Duration
	// FetchTimeout bounds each fetch of a remote source (default
	// DefaultFetchTimeout).
	FetchTimeout time.Duration
	// UnknownKeyRefresh is the least time between two fetches of a remote
	// source prompted by tokens that name an unknown key (default
	// DefaultUnknownKeyRefresh; negative: every such token may prompt one).
	UnknownKeyRefresh time.Duration
	// Registerer, when set, gets the sources' metrics:
	// keydelivery_token_trust_fetches_total{source,result},
	// keydelivery_token_trust_last_success_timestamp_seconds{source},
	// keydelivery_token_trust_keys{source} and
	// keydelivery_token_trust_valid_keys.
	Registerer prometheus.Registerer
}

// NewTrust loads the certificates in paths (see [LoadCertificates]) and logs
// each of them. It fails if the initial load fails. A nil log discards output.
func NewTrust(paths []string, log *slog.Logger) (*Trust, error) {
	if len(paths) == 0 {
		return nil, errors.New("auth: load certificates: no paths")
	}
	return NewTrustWith(context.Background(), TrustOptions{Paths: paths, Log: log})
}

// NewTrustWith loads the certificate files, fetches every remote source
// once (bounded by ctx and FetchTimeout each, all at once), and returns
// the Trust. It fails when the files fail to load; a remote source that
// fails is logged, reported by Sources and tried again by Refresh.
func NewTrustWith(ctx context.Context, o TrustOptions) (*Trust, error) {
	if len(o.Paths) == 0 && len(o.Remotes) == 0 {
		return nil, errors.New("auth: new trust: no certificate files and no remote sources")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Leeway <= 0 {
		o.Leeway = DefaultLeeway
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = DefaultFetchTimeout
	}
	switch {
	case o.UnknownKeyRefresh == 0:
		o.UnknownKeyRefresh = DefaultUnknownKeyRefresh
	case o.UnknownKeyRefresh < 0:
		o.UnknownKeyRefresh = 0
	}
	t := &Trust{
		paths:             slices.Clone(o.Paths),
		log:               o.Log,
		now:               o.Now,
		leeway:            o.Leeway,
		fetchTimeout:      o.FetchTimeout,
		unknownKeyRefresh: o.UnknownKeyRefresh,
		fileStatus:        SourceStatus{Kind: KindFile, Name: strings.Join(o.Paths, ",")},
	}
	seen := map[string]bool{}
	for _, r := range o.Remotes {
		if r.Source == nil {
			return nil, errors.New("auth: new trust: nil source")
		}
		key := r.Source.Kind() + " " + r.Source.Name()
		if seen[key] {
			return nil, fmt.Errorf("auth: new trust: source %s is given twice", key)
		}
		seen[key] = true
		if r.Refresh <= 0 {
			r.Refresh = DefaultRefresh
		}
		t.remotes = append(t.remotes, &remote{Remote: r, wake: make(chan struct{}, 1),
			status: SourceStatus{Kind: r.Source.Kind(), Name: r.Source.Name(), Refresh: r.Refresh}})
	}
	if o.Registerer != nil {
		m, err := newTrustMetrics(t, o.Registerer)
		if err != nil {
			return nil, err
		}
		t.metrics = m
	}
	t.mu.Lock()
	if len(t.paths) > 0 {
		stamp := fingerprint(t.paths)
		if err := t.loadFilesLocked(stamp); err != nil {
			t.mu.Unlock()
			return nil, err
		}
	} else {
		t.installLocked(true)
	}
	t.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range t.remotes {
		wg.Go(func() { t.fetchRemote(ctx, r) })
	}
	wg.Wait()
	return t, nil
}

// Reload loads the certificate files again from the same paths. On success
// it replaces their part of the set and logs each key; on failure it keeps
// the previous files, logs why at Warn and returns the error. It also
// prompts every remote source to fetch again at once (what SIGHUP does),
// through Refresh, which must be running for that.
func (t *Trust) Reload() error {
	for _, r := range t.remotes {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	if len(t.paths) == 0 {
		return nil
	}
	stamp := fingerprint(t.paths)
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reloadLocked(stamp)
}

// reloadLocked loads and installs the files. t.mu must be held. The stamp
// is recorded whatever the outcome, so an unchanged broken file is reported
// once rather than on every poll; any later change to the files is noticed
// again.
func (t *Trust) reloadLocked(stamp string) error {
	err := t.loadFilesLocked(stamp)
	if err != nil {
		t.log.Warn("reload of trusted token certificates failed; keeping the previous set",
			"err", err, "kept", len(t.files))
	}
	return err
}

// loadFilesLocked loads the files and installs them. t.mu must be held.
func (t *Trust) loadFilesLocked(stamp string) error {
	t.stamp = stamp
	now := t.now()
	t.fileStatus.LastAttempt = now
	certs, skipped, err := loadCertificates(t.paths)
	if err != nil {
		t.fileStatus.LastError = oneLine(err.Error())
		t.fileStatus.Failures++
		return err
	}
	for _, s := range skipped {
		t.log.Warn("token certificate file skipped", "why", s)
	}
	t.files = certs
	t.fileStatus.Keys, t.fileStatus.LastSuccess, t.fileStatus.LastError, t.fileStatus.Failures = len(certs), now, "", 0
	t.log.Info("trusted token certificates loaded", "count", len(certs), "paths", strings.Join(t.paths, ","))
	t.installLocked(true)
	return nil
}

// installLocked builds the set from the files and every remote source's
// keys, and swaps it in: always when force is set (a reload of the files),
// else only when it differs from the current one, so that a refresh that
// brings the same keys keeps the verified-token cache. It logs the new
// set, and warns when no key in it is currently valid. t.mu must be held.
func (t *Trust) installLocked(force bool) {
	var certs []Certificate
	seen := make(map[[32]byte]bool)
	add := func(cs []Certificate) {
		for _, c := range cs {
			if !c.bare() {
				if seen[c.SHA256] {
					continue
				}
				seen[c.SHA256] = true
			}
			certs = append(certs, c)
		}
	}
	add(t.files)
	for _, r := range t.remotes {
		add(r.keys)
	}
	next := newTrustSet(certs)
	next.unknown = t.unknownKey
	if old := t.set.Load(); old != nil && !force && old.stamp == next.stamp {
		return
	}
	t.set.Store(next)
	if len(t.remotes) > 0 {
		t.log.Info("trusted token keys changed", "count", len(certs), "files", len(t.files), "sources", len(t.remotes))
	}
	now := t.now()
	t.LogCertificates(now, t.leeway)
	if t.validCount(now) == 0 {
		t.log.Warn("no trusted token key is currently valid; every token will be refused", "reason", NoValidTokenCertificate)
	}
}

// validCount is the number of keys in the current set valid at now.
func (t *Trust) validCount(now time.Time) int {
	n := 0
	for _, c := range t.set.Load().all {
		if c.cert.Status(now, t.leeway) == statusValid {
			n++
		}
	}
	return n
}

// Ready returns nil when at least one trusted key is currently valid, and
// otherwise an error whose text starts with NoValidTokenCertificate and
// says why (what is trusted, and the sources that fail).
func (t *Trust) Ready() error {
	now := t.now()
	if t.validCount(now) > 0 {
		return nil
	}
	s := t.set.Load()
	detail := fmt.Sprintf("%d trusted keys, none valid at %s", len(s.all), now.UTC().Format(time.RFC3339))
	if len(s.all) == 0 {
		detail = "no key is trusted"
	}
	if d := t.Detail(); d != "" {
		detail += "; " + d
	}
	return fmt.Errorf("%w: %s", errNoValidKey, detail)
}

// Detail describes, on one line, the sources whose last attempt failed
// ("" when every source is healthy): for /readyz, which passes as long as
// a valid key is trusted, the last good set of a failing source included.
func (t *Trust) Detail() string {
	var parts []string
	for _, s := range t.Sources() {
		if !s.Healthy() && !s.LastAttempt.IsZero() {
			parts = append(parts, s.describe())
		}
	}
	return strings.Join(parts, "; ")
}

// Sources returns the status of the certificate files (when configured)
// and of every remote source, in configuration order.
func (t *Trust) Sources() []SourceStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []SourceStatus
	if len(t.paths) > 0 {
		out = append(out, t.fileStatus)
	}
	for _, r := range t.remotes {
		out = append(out, r.status)
	}
	return out
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

// Certificates returns a copy of the trusted certificates (from files and
// Key Vault), sorted by NotAfter: every key but the bare keys of key sets.
func (t *Trust) Certificates() []Certificate {
	s := t.set.Load()
	out := make([]Certificate, len(s.certs))
	for i, c := range s.certs {
		out[i] = c.cert
	}
	return out
}

// Keys returns a copy of every trusted key: the certificates, sorted by
// NotAfter, then the bare keys of key sets.
func (t *Trust) Keys() []Certificate {
	s := t.set.Load()
	out := make([]Certificate, len(s.all))
	for i, c := range s.all {
		out[i] = c.cert
	}
	return out
}

// LogCertificates logs each trusted key at Info with its status at now, the
// validity window widened by leeway.
func (t *Trust) LogCertificates(now time.Time, leeway time.Duration) {
	for _, c := range t.set.Load().all {
		attrs := []any{
			"kind", c.cert.kind(),
			"subject", c.cert.Subject,
			"x5t", c.cert.X5T(),
			"sha256", c.sha256Hex,
			"notBefore", c.cert.NotBefore,
			"notAfter", c.cert.NotAfter,
			"status", c.cert.Status(now, leeway),
			"source", c.cert.Source,
		}
		if c.cert.KeyID != "" {
			attrs = append(attrs, "kid", c.cert.KeyID)
		}
		if c.cert.bare() {
			attrs = []any{"kind", c.cert.kind(), "kid", c.cert.KeyID, "jwkThumbprint", c.cert.JWKThumbprint(),
				"status", c.cert.Status(now, leeway), "source", c.cert.Source}
		}
		t.log.Info("trusted token certificate", attrs...)
	}
}

// kind is c.Kind, KindFile when empty.
func (c Certificate) kind() string {
	if c.Kind == "" {
		return KindFile
	}
	return c.Kind
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
