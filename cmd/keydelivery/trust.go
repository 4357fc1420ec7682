package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/auth/jwks"
	"github.com/keydelivery/keydelivery/auth/keyvault"
)

// loadTrust builds the token trust from the configuration (issue 16): the
// certificate files, and the remote sources (Azure Key Vault certificates,
// OpenID Connect issuers, JSON Web Key Sets), each fetched once now. A
// remote source that fails is not fatal: it is logged, retried in the
// background with backoff, and reported by /readyz and /api/token-trust.
func loadTrust(ctx context.Context, cfg *config, log *slog.Logger, reg prometheus.Registerer) (*auth.Trust, error) {
	var remotes []auth.Remote
	for _, u := range cfg.TokenKeyVaultCerts {
		src, err := keyvault.New(keyvault.Options{CertificateURL: u, Log: log, Leeway: cfg.TokenLeeway})
		if err != nil {
			return nil, err
		}
		remotes = append(remotes, auth.Remote{Source: src, Refresh: cfg.TokenKeyVaultRefresh})
	}
	for _, iss := range cfg.TokenOIDCIssuers {
		src, err := jwks.New(jwks.Options{Issuer: iss, Log: log})
		if err != nil {
			return nil, err
		}
		remotes = append(remotes, auth.Remote{Source: src, Refresh: cfg.TokenJWKSRefresh})
	}
	for _, u := range cfg.TokenJWKSURLs {
		src, err := jwks.New(jwks.Options{URL: u, Log: log})
		if err != nil {
			return nil, err
		}
		remotes = append(remotes, auth.Remote{Source: src, Refresh: cfg.TokenJWKSRefresh})
	}
	return auth.NewTrustWith(ctx, auth.TrustOptions{Paths: cfg.TokenCerts, Remotes: remotes, Log: log,
		Leeway: cfg.TokenLeeway, Registerer: reg})
}

// trustSourceWarnings is what --check-config warns about the remote trust
// sources: a source that could not be read now. It does not fail the
// check: a source may be unreachable from where the check runs, and the
// server starts without it (its /readyz says so until it answers).
func trustSourceWarnings(t *auth.Trust) []string {
	var out []string
	for _, s := range t.Sources() {
		if !s.Healthy() {
			out = append(out, fmt.Sprintf("token trust source %s %s: %s", s.Kind, s.Name, s.LastError))
		}
	}
	return out
}

// trustSourcesLine summarises the remote trust sources for --check-config
// ("" without any).
func trustSourcesLine(t *auth.Trust) string {
	var parts []string
	for _, s := range t.Sources() {
		if s.Kind == auth.KindFile {
			continue
		}
		state := fmt.Sprintf("%d keys", s.Keys)
		if !s.Healthy() {
			state = "not read"
		}
		parts = append(parts, fmt.Sprintf("%s %s (%s)", s.Kind, s.Name, state))
	}
	return strings.Join(parts, "; ")
}
