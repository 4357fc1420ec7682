package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/keystore/boltstore"
)

// What --check-config checks is what startup checks, in the same code:
// validate (flags, store form and directory, CORS origins, public URL),
// loadChecked (KEK file, token certificates, protection pair, admin
// credentials, and whatever else a feature loads there, such as TLS
// material) and the store's KEK check (keystore.Keys.VerifyKEKs, which
// startup runs before it records new KEKs). Only binding the listeners and
// writing to the store are left out: --check-config opens a bolt store
// read-only and never creates one.

// lockTimeout is how long opening a bolt store waits for another process
// to release it.
const lockTimeout = 2 * time.Second

// noCredentialsWarning is the warning, at startup and in --check-config's
// summary, that without admin credentials the admin API refuses
// everything ("" when there are credentials).
func (m *checked) noCredentialsWarning() string {
	if m.creds.Len() > 0 {
		return ""
	}
	return "no admin credentials are configured (--admin-credentials-file): every admin API request, every kdctl command that calls the server, is refused with 401 no_credentials_configured; make a credential with: kdctl adminkey generate"
}

// warnNoCredentials logs noCredentialsWarning, if any.
func (m *checked) warnNoCredentials(log *slog.Logger) {
	if w := m.noCredentialsWarning(); w != "" {
		log.Warn(w)
	}
}

// checkKEKs is startup's KEK check: VerifyKEKs refuses a KEK that differs
// from the one the store recorded under its ID, and a KEK file lacking a
// KEK the store's keys are sealed under; then CheckKEKs records new KEKs.
// A store no server has used before is logged at warning level, once (the
// check values recorded now mark it used).
func (s *app) checkKEKs(ctx context.Context) error {
	rep, err := s.keys.VerifyKEKs(ctx)
	if err != nil {
		return err
	}
	store := redactStore(s.cfg.storeSpec())
	if rep.Empty {
		s.log.Warn(emptyStoreWarning(s.cfg.StoreAdopt || s.cfg.Dev || s.newBolt), "store", store)
	}
	for _, id := range rep.Retired {
		s.log.Warn("the store recorded a kek that the kek file lacks; no stored value is sealed under it any more, so it may stay out", "kek", id, "store", store)
	}
	if len(rep.New) > 0 && !rep.Empty {
		s.log.Info("new kek: recording its check value in the store", "kek", rep.New)
	}
	// Through the store marker (issue 11): a KEK check value is written
	// only into a store that is known, new, or adopted (openKeys).
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return s.openKeys(cctx, s.newBolt)
}

// checkConfig is --check-config after validate and loadChecked: the store
// check, then a summary on w, warnings included. It returns an error for
// anything startup would refuse.
func checkConfig(ctx context.Context, cfg *config, log *slog.Logger, m *checked, w io.Writer) error {
	var warnings []string
	storeLine, storeWarnings, err := checkStoreKEKs(ctx, cfg, log, m)
	if err != nil {
		return err
	}
	warnings = append(warnings, storeWarnings...)

	certs := m.trust.Keys() // certificates and the keys of the remote trust sources (issue 16)
	now, valid := time.Now(), 0
	for _, c := range certs {
		if c.Status(now, cfg.TokenLeeway) == "valid" {
			valid++
		}
	}
	if valid == 0 {
		warnings = append(warnings, fmt.Sprintf("none of the %d trusted token certificates is valid now: every token will be refused (signing_key_not_valid) until one is; /readyz reports %s", len(certs), auth.NoValidTokenCertificate))
	}
	warnings = append(warnings, trustSourceWarnings(m.trust)...)
	if w := m.noCredentialsWarning(); w != "" {
		warnings = append(warnings, w)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "configuration ok: store %s, %d trusted token certificate(s), %d KEK(s) (primary %s)\n",
		redactStore(cfg.storeSpec()), len(certs), len(m.ring.IDs()), m.ring.PrimaryID())
	line := func(name, format string, args ...any) {
		fmt.Fprintf(&b, "  %-20s %s\n", name+":", fmt.Sprintf(format, args...))
	}
	line("store", "%s", storeLine)
	line("kek file", "%s", strings.Join(m.ring.IDs(), ", ")+" (new keys sealed under "+m.ring.PrimaryID()+")")
	line("token certificates", "%d trusted, %d valid now", len(certs), valid)
	if l := trustSourcesLine(m.trust); l != "" {
		line("token sources", "%s", l)
	}
	line("token issuer", "%s; audience %s", strings.Join(cfg.TokenIssuers, ", "), cfg.TokenAudience)
	line("admin credentials", "%s", credentialCounts(m.creds))
	if len(cfg.CORSOrigins) == 0 {
		line("cors origins", "none (browser players on other origins are refused)")
	} else {
		line("cors origins", "%s", strings.Join(cfg.CORSOrigins, ", "))
	}
	switch {
	case cfg.PublicURL == "" && cfg.Dev:
		line("public url", "the delivery listener's address (--dev)")
	case cfg.PublicURL == "":
		line("public url", "none (the admin API's delivery URLs answer 501 not_configured)")
	default:
		line("public url", "%s", cfg.PublicURL)
	}
	if m.protCert != nil {
		line("protection cert", "%s", m.protCert.Subject)
	}
	if cfg.CPIXRecipientCert != "" {
		line("cpix recipient", "%s", cfg.CPIXRecipientCert)
	}
	for _, l := range m.extraSummary() {
		line(l[0], "%s", l[1])
	}
	for _, w := range warnings {
		b.WriteString("warning: " + w + "\n")
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// extraSummary is the hook for features that load material in loadChecked
// (TLS certificates, for one): each returns its summary lines as {name,
// text}. A feature whose material fails to load makes loadChecked fail,
// which fails --check-config as it fails startup.
func (m *checked) extraSummary() [][2]string { return m.edge.summary() }

// credentialCounts is "3 (1 admin, 2 reader)", or "none".
func credentialCounts(set *credentials.Set) string {
	if set.Len() == 0 {
		return "none"
	}
	var parts []string
	for role, n := range set.Roles() {
		parts = append(parts, fmt.Sprintf("%d %s", n, role))
	}
	slices.Sort(parts)
	return fmt.Sprintf("%d (%s)", set.Len(), strings.Join(parts, ", "))
}

// emptyStoreWarning is the warning for a store that holds nothing: new,
// or one that lost everything (they cannot be told apart). Unless adopt
// (--store-adopt, --dev, or a bolt file this start creates), the server
// stays unready on it with store_lost until an operator adopts it.
func emptyStoreWarning(adopt bool) string {
	const w = "the store is new and empty: no server has used it before (if you expected keys in it, check --store)"
	if adopt {
		return w
	}
	return w + "; it is taken into use only when adopted: start once with --store-adopt, or run kdctl store adopt (until then the server is unready with store_lost)"
}

// checkStoreKEKs connects to the store as startup does, without writing
// (a bolt store is opened read-only; one that does not exist is not
// created), and runs the KEK check of startup on it.
func checkStoreKEKs(ctx context.Context, cfg *config, log *slog.Logger, m *checked) (line string, warnings []string, err error) {
	spec := redactStore(cfg.storeSpec())
	var store keystore.Store
	if path, ok := strings.CutPrefix(cfg.storeSpec(), "bolt:"); ok {
		store, err = boltstore.OpenReadOnly(path, lockTimeout)
		if errors.Is(err, boltstore.ErrNoStore) {
			return spec + ": no file yet", []string{"the store " + spec + " does not exist: starting creates a new, empty store there (if you expected keys in it, check --store)"}, nil
		}
	} else {
		store, err = openStore(cfg, log)
	}
	if err != nil {
		return "", nil, err
	}
	defer store.Close()
	keys := keystore.NewKeys(store, m.ring, keystore.Options{Timeout: cfg.StoreTimeout})
	if err := keys.Ping(ctx); err != nil {
		return "", nil, fmt.Errorf("store %s: %w", spec, err)
	}
	rep, err := keys.VerifyKEKs(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("store %s: %w", spec, err)
	}
	line = spec + ": reachable"
	if rep.Empty {
		warnings = append(warnings, "the store "+spec+": "+emptyStoreWarning(cfg.StoreAdopt || cfg.Dev))
	} else {
		line += "; KEKs it recorded: " + strings.Join(rep.Recorded, ", ")
	}
	if len(rep.New) > 0 && !rep.Empty {
		line += "; new: " + strings.Join(rep.New, ", ") + " (starting records it)"
	}
	for _, id := range rep.Retired {
		warnings = append(warnings, fmt.Sprintf("the store recorded kek %q, which the kek file lacks; no stored value is sealed under it any more, so it may stay out", id))
	}
	return line, warnings, nil
}
