package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keydelivery/keydelivery/auth/jwks"
	"github.com/keydelivery/keydelivery/auth/keyvault"
	"github.com/keydelivery/keydelivery/delivery"
	"github.com/keydelivery/keydelivery/internal/cli"
	"github.com/keydelivery/keydelivery/internal/ratelimit"

	"github.com/keydelivery/keydelivery/internal/netedge"
	"github.com/keydelivery/keydelivery/keystore/redisstore"
)

// config is everything run needs, from defaults, then the environment
// (KD_*), then flags. Secrets are never flag values: flags name files.
type config struct {
	Dev     bool
	DataDir string

	Listen      string
	AdminListen string

	Store             string
	StoreTimeout      time.Duration
	KEKFile           string
	RedisPasswordFile string
	RedisPoolSize     int
	RedisAutoPipeline bool

	// Durability (issue 11): writes confirmed by replicas, the Redis
	// settings check, the store marker.
	RedisWaitReplicas   string
	RedisWaitTimeout    time.Duration
	RedisWaitAOF        bool
	RedisRequireDurable bool
	StoreAdopt          bool
	StoreCheckInterval  time.Duration

	TokenCerts         []string
	TokenCertsReload   time.Duration
	TokenIssuers       []string
	TokenAudience      string
	TokenLeeway        time.Duration
	TokenMaxLifetime   time.Duration
	AllowUnboundTokens bool

	// Token trust sources beyond certificate files (issue 16): Azure Key
	// Vault certificates, OpenID Connect issuers, JSON Web Key Sets.
	TokenKeyVaultCerts   []string
	TokenKeyVaultRefresh time.Duration
	TokenOIDCIssuers     []string
	TokenJWKSURLs        []string
	TokenJWKSRefresh     time.Duration

	CORSOrigins          []string
	TokenCacheSize       int
	KeyCacheTTL          time.Duration
	KeyCacheSize         int
	LicenseMaxKIDs       int
	LicenseTimeout       time.Duration
	ClearKeyPersistent   bool
	PublicURL            string
	MaxImportBytes       int64
	DeletedRetention     time.Duration
	ProtectionCert       string
	ProtectionKey        string
	AdminCredentialsFile string
	AuditLog             string

	// Hostile clients (issue 12): per-address budgets before any signature
	// or credential check, and tokens that must name their certificate.
	LimitAuthFailures      ratelimit.Limit
	LimitAdminAuthFailures ratelimit.Limit
	LimitRequests          ratelimit.Limit
	RequireTokenKeyID      bool

	// HTTPS, connections and proxies (the edge: edge.go).
	TLSCert, TLSKey           string
	AdminTLSCert, AdminTLSKey string
	AdminClientCA             string
	TLSReload                 time.Duration
	H2C                       bool
	ACMEDomains               []string
	ACMEEmail                 string
	ACMEDirectory             string
	ACMEDirectoryCA           string
	ACMEHTTPListen            string
	TrustedProxies            []string
	TrustedProxiesHeader      string
	ProxyProtocol             bool
	MaxConnections            int
	IdleTimeout               time.Duration
	HeaderTimeout             time.Duration
	RequestTimeout            time.Duration
	AdminRequestTimeout       time.Duration
	DevTLS                    bool
	listenSet                 bool // --listen or KD_LISTEN was given

	// SPEKE v2 key provider and encrypted CPIX (admin/speke, issue 14).
	WidevineProvider  string
	CPIXRecipientCert string
	CPIXRecipientKey  string

	DrainDelay   time.Duration
	DrainTimeout time.Duration
	LogLevel     string
	AccessLog    bool
	CheckConfig  bool
	Version      bool

	// CreateStore: create the bolt store's directory when missing.
	CreateStore bool

	// From the environment only (secrets).
	kekText       string
	redisPassword string
	storeFromFlag bool
	// flagNames are the names of every flag, for the environment check.
	flagNames []string
}

// flagHelp: --help was asked for and printed.
var flagHelp = flag.ErrHelp

// usageHeader starts the server's --help.
const usageHeader = `Usage: keydelivery [flags]

The key-delivery server. Every flag can also be set from the environment as
KD_<FLAG> (upper case, - as _: --store is KD_STORE); flags win. Secrets come
from files or the environment, never from flag values: KD_KEK (the KEK
file's content), KD_REDIS_PASSWORD.

Flags:
`

// listFlag is a comma-separated, repeatable list flag.
type listFlag struct{ v *[]string }

func (l listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

func (l listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l.v = append(*l.v, p)
		}
	}
	return nil
}

// envName is the environment variable that sets a flag: KD_ and the flag
// name in upper case with '-' as '_'.
func envName(flagName string) string {
	return "KD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseConfig reads the configuration from the environment (getenv) and the
// arguments. --help writes the flags to help and returns flagHelp; a bad
// flag is an error of one line (an unknown one names the nearest flags).
func parseConfig(args []string, getenv func(string) string, help io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.BoolVar(&c.Dev, "dev", false, "development mode: keep everything under --data-dir and generate a dev token certificate, KEK and admin credential on first start (never in production)")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory for the embedded store and, in --dev, the generated dev material")
	fs.StringVar(&c.Listen, "listen", ":8080", "delivery plane listen address (players)")
	fs.StringVar(&c.AdminListen, "admin-listen", "127.0.0.1:8081", "admin plane listen address (/healthz, /readyz, /metrics, /api); keep it on loopback or an internal network")
	fs.StringVar(&c.Store, "store", "", "key store: bolt:PATH (default bolt:<data-dir>/keys.db), redis://[user@]host:port/db, rediss://..., redis+sentinel://h1:p1,h2:p2/MASTER[?db=N], redis+cluster://h1:p1,h2:p2 (put a password in --redis-password-file or KD_REDIS_PASSWORD, not in a flag)")
	fs.DurationVar(&c.StoreTimeout, "store-timeout", time.Second, "deadline for each key store call; a store slower than this answers 503 with Retry-After")
	fs.StringVar(&c.KEKFile, "kek-file", "", "key-encryption key file: lines \"ID BASE64\" (32 bytes), first line seals new keys (or set KD_KEK to the file's content); generate a line with: kdctl kek generate")
	fs.StringVar(&c.RedisPasswordFile, "redis-password-file", "", "file holding the Redis password (or set KD_REDIS_PASSWORD)")
	fs.IntVar(&c.RedisPoolSize, "redis-pool-size", 0, "Redis connection pool size (default 10 per CPU)")
	fs.BoolVar(&c.RedisAutoPipeline, "redis-auto-pipeline", true, "send the key reads of concurrent requests to Redis together, in shared pipelines (go-redis auto-pipelining; --redis-auto-pipeline=false: one round trip per read)")
	// Durability (issue 11).
	fs.StringVar(&c.RedisWaitReplicas, "redis-wait-replicas", "auto", "replicas that must confirm each admin write (WAIT) before it is acknowledged: a number, or auto (every replica connected to the master taking the write: 1 where it has one, 0 where it has none); fewer in time answers 503 not_replicated")
	fs.DurationVar(&c.RedisWaitTimeout, "redis-wait-timeout", time.Second, "how long a write waits for its replicas (--redis-wait-replicas)")
	fs.BoolVar(&c.RedisWaitAOF, "redis-wait-aof", false, "also wait for the append-only files (WAITAOF, Redis 7.2 or later): the master's own, fsynced, and the replicas'")
	fs.BoolVar(&c.RedisRequireDurable, "redis-require-durable", false, "refuse to start, and fail readiness later, while a Redis setting can lose an acknowledged key (redis_not_durable); without it they are logged and shown in /readyz")
	fs.DurationVar(&c.StoreCheckInterval, "store-check-interval", time.Minute, "how often the store's marker (store_lost) and the Redis settings (redis_not_durable) are checked again after startup")
	fs.BoolVar(&c.StoreAdopt, "store-adopt", false, "take the store as it is at startup: write the store marker into a new store (or one restored from a backup, or one that lost data), which is refused (store_lost) otherwise; set it for one start, never as a standing setting")
	fs.Var(listFlag{&c.TokenCerts}, "token-certs", "trusted token-signing certificates: files or directories of PEM, DER or Azure Key Vault certificate JSON (comma-separated or repeated)")
	fs.DurationVar(&c.TokenCertsReload, "token-certs-reload", 10*time.Second, "how often to check --token-certs for changes (0 disables; SIGHUP always reloads)")
	fs.Var(listFlag{&c.TokenIssuers}, "token-issuer", "accepted token issuers (iss), comma-separated or repeated")
	fs.StringVar(&c.TokenAudience, "token-audience", "", "required token audience (aud)")
	fs.DurationVar(&c.TokenLeeway, "token-leeway", 60*time.Second, "clock skew allowed on exp, nbf, iat and certificate validity (at most 5m)")
	fs.DurationVar(&c.TokenMaxLifetime, "token-max-lifetime", 0, "refuse tokens whose exp - iat is longer than this (0: no limit)")
	fs.BoolVar(&c.AllowUnboundTokens, "allow-unbound-tokens", false, "let a token that names no key (no kids or contentkeyidentifier claim) fetch any key")
	// Token trust sources beyond certificate files (issue 16).
	fs.Var(listFlag{&c.TokenKeyVaultCerts}, "token-keyvault-cert", "trust every enabled, valid version of an Azure Key Vault certificate, followed as Key Vault renews it: https://<vault>.vault.azure.net/certificates/<name> (repeatable); the server authenticates with azidentity's default credential chain (managed identity, workload identity, AZURE_* environment, Azure CLI)")
	fs.DurationVar(&c.TokenKeyVaultRefresh, "token-keyvault-refresh", 10*time.Minute, "how often each --token-keyvault-cert is read again (±10% jitter; sooner after a failure, and when a token names an unknown key)")
	fs.Var(listFlag{&c.TokenOIDCIssuers}, "token-oidc-issuer", "trust the EC P-256 keys of an OpenID Connect issuer, read from its discovery document's jwks_uri (repeatable); also an accepted --token-issuer when none is given")
	fs.Var(listFlag{&c.TokenJWKSURLs}, "token-jwks-url", "trust the EC P-256 keys of a JSON Web Key Set URL, chosen by kid (repeatable)")
	fs.DurationVar(&c.TokenJWKSRefresh, "token-jwks-refresh", 10*time.Minute, "how often each --token-oidc-issuer and --token-jwks-url is read again (±10% jitter; sooner after a failure, and when a token names an unknown kid)")
	fs.IntVar(&c.TokenCacheSize, "token-cache-size", 100000, "verified tokens remembered so a repeated token skips the ES256 check (0: verify every request)")
	fs.DurationVar(&c.KeyCacheTTL, "key-cache-ttl", 10*time.Second, "how long an unsealed key is served from memory (0: read the store on every request); deletes through any instance take effect at once")
	fs.IntVar(&c.KeyCacheSize, "key-cache-size", 100000, "most keys held in the key cache")
	fs.IntVar(&c.LicenseMaxKIDs, "license-max-kids", 32, "most key IDs one license request (ClearKey, PlayReady, Widevine, FairPlay) may ask for; more is refused with 400 too_many_kids")
	fs.DurationVar(&c.LicenseTimeout, "license-timeout", 10*time.Second, "deadline for the key lookups and the license issuer of one license request")
	fs.BoolVar(&c.ClearKeyPersistent, "clearkey-persistent-license", false, "let ClearKey answer \"persistent-license\" session requests (refused with 403 persistent_license_disabled otherwise)")
	fs.Var(listFlag{&c.CORSOrigins}, "cors-origins", "origins browser players may call from: exact origins, patterns such as https://*.example.com, or * (comma-separated)")
	fs.StringVar(&c.PublicURL, "public-url", "", "the delivery plane's base URL as players see it (e.g. https://keys.example.com), for the admin API's delivery URLs; --dev defaults it to the local listener")
	fs.Int64Var(&c.MaxImportBytes, "max-import-bytes", 64<<20, "largest key import (JSON or CPIX) the admin API accepts, in bytes")
	fs.DurationVar(&c.DeletedRetention, "deleted-retention", 90*24*time.Hour, "how long a soft-deleted key is kept (restorable) before it is purged for good; 0 keeps deleted keys until purged by hand")
	fs.StringVar(&c.ProtectionCert, "protection-cert", "", "RSA certificate (PEM) that AMS-style clients encrypt content keys to (POST /api/ContentKeys); --dev generates one")
	fs.StringVar(&c.ProtectionKey, "protection-key", "", "the protection certificate's RSA private key (PEM file)")
	fs.StringVar(&c.AdminCredentialsFile, "admin-credentials-file", "", "admin credentials: lines \"NAME ROLE SHA256HEX\" (generate with: kdctl adminkey generate); re-read on SIGHUP")
	fs.StringVar(&c.AuditLog, "audit-log", "stdout", "where admin audit records go: a file path, or stdout")
	// Hostile clients (issue 12).
	c.LimitAuthFailures, c.LimitAdminAuthFailures = defaultLimitAuthFailures, defaultLimitAdminAuthFailures
	fs.Var(limitFlag{&c.LimitAuthFailures}, "limit-auth-failures", "budget of failed token verifications per client address, RATE/UNIT[:BURST] (e.g. 20/s:40) or off; over it the delivery plane answers 429 rate_limited before looking at the token")
	fs.Var(limitFlag{&c.LimitAdminAuthFailures}, "limit-admin-auth-failures", "budget of failed admin authentications per client address, RATE/UNIT[:BURST] or off; over it the admin plane answers 429 rate_limited")
	fs.Var(limitFlag{&c.LimitRequests}, "limit-requests", "budget of delivery requests per client address, RATE/UNIT[:BURST] (e.g. 100/s:200), or off (the default)")
	fs.BoolVar(&c.RequireTokenKeyID, "require-token-key-id", false, "refuse tokens whose header names no certificate (no x5t, x5t#S256 or kid) instead of trying each valid certificate")

	// HTTPS, connections and proxies (edge.go).
	fs.StringVar(&c.TLSCert, "tls-cert", "", "delivery plane: serve HTTPS with this certificate chain (PEM, the server's certificate first); reloaded on change and on SIGHUP")
	fs.StringVar(&c.TLSKey, "tls-key", "", "the private key (PEM) of --tls-cert")
	fs.StringVar(&c.AdminTLSCert, "admin-tls-cert", "", "admin plane: serve HTTPS with this certificate chain (PEM); reloaded on change and on SIGHUP")
	fs.StringVar(&c.AdminTLSKey, "admin-tls-key", "", "the private key (PEM) of --admin-tls-cert")
	fs.StringVar(&c.AdminClientCA, "admin-client-ca", "", "admin plane: require a client certificate issued by a CA of this PEM file (mutual TLS; needs --admin-tls-cert); admin credentials still apply")
	fs.DurationVar(&c.TLSReload, "tls-reload", 10*time.Second, "how often to check the TLS certificate files for changes (0: only on SIGHUP)")
	fs.BoolVar(&c.H2C, "h2c", false, "delivery plane without TLS: also accept cleartext HTTP/2 with prior knowledge (behind a proxy that speaks it)")
	fs.Var(listFlag{&c.ACMEDomains}, "acme-domain", "delivery plane: obtain and renew a certificate for this name from an ACME CA (repeatable or comma-separated); the listener must be reachable on port 443 as that name (TLS-ALPN-01), or --acme-http-listen on port 80 (HTTP-01)")
	fs.StringVar(&c.ACMEEmail, "acme-email", "", "contact address of the ACME account (expiry notices)")
	fs.StringVar(&c.ACMEDirectory, "acme-directory", "https://acme-v02.api.letsencrypt.org/directory", "ACME directory URL (Let's Encrypt staging: https://acme-staging-v02.api.letsencrypt.org/directory; any RFC 8555 CA)")
	fs.StringVar(&c.ACMEDirectoryCA, "acme-directory-ca", "", "CA certificates (PEM) to trust for the ACME directory's HTTPS, for a private CA (default: the system's)")
	fs.StringVar(&c.ACMEHTTPListen, "acme-http-listen", "", "also answer ACME HTTP-01 challenges on this address (e.g. :80); every other request there is redirected to HTTPS")
	fs.Var(listFlag{&c.TrustedProxies}, "trusted-proxies", "proxies (CIDR prefixes or addresses, comma-separated) whose forwarded client address is believed; without it forwarded headers are ignored")
	fs.StringVar(&c.TrustedProxiesHeader, "trusted-proxies-header", "X-Forwarded-For", "the header the trusted proxies write the client address to: X-Forwarded-For or Forwarded")
	fs.BoolVar(&c.ProxyProtocol, "proxy-protocol", false, "both listeners: a trusted proxy may open its connections with a PROXY protocol (v1 or v2) header naming the client (needs --trusted-proxies)")
	fs.IntVar(&c.MaxConnections, "max-connections", 4096, "most connections each listener holds open; at the cap the longest idle one is closed first, else new ones wait (0: no cap)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 30*time.Second, "how long a kept-alive connection may stay idle between requests")
	fs.DurationVar(&c.HeaderTimeout, "header-timeout", 5*time.Second, "how long a client may take to send a request's headers (both planes)")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 15*time.Second, "how long a delivery request may take to arrive and be answered; also the admin plane's bound before its credential is checked")
	fs.DurationVar(&c.AdminRequestTimeout, "admin-request-timeout", 5*time.Minute, "how long an authenticated admin request (an import of tens of megabytes) may take to arrive and be answered")
	fs.BoolVar(&c.DevTLS, "dev-tls", false, "with --dev: serve the delivery plane over HTTPS with a certificate from a local CA generated under --data-dir (prints how to trust it)")

	// SPEKE v2 key provider and encrypted CPIX (admin/speke, issue 14).
	fs.StringVar(&c.WidevineProvider, "widevine-provider", "", "the provider field of the Widevine header in the Widevine PSSH boxes SPEKE answers (default: none)")
	fs.StringVar(&c.CPIXRecipientCert, "cpix-recipient-cert", "", "RSA certificate (PEM) CPIX documents are encrypted to for import (default: --protection-cert)")
	fs.StringVar(&c.CPIXRecipientKey, "cpix-recipient-key", "", "the CPIX recipient certificate's RSA private key (PEM file; default: --protection-key)")
	fs.DurationVar(&c.DrainDelay, "drain-delay", 0, "on SIGTERM, how long to keep serving with /readyz failing before the listeners stop (give load balancers time to notice; e.g. 5s in Kubernetes)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 15*time.Second, "on SIGTERM, how long in-flight requests may take to finish")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.AccessLog, "access-log", false, "log every delivery request (tokens are redacted); 5xx answers are always logged")
	fs.BoolVar(&c.CheckConfig, "check-config", false, "run every check startup runs, the store's KEK check included, without starting or writing; print a summary and exit (1 on anything startup would refuse)")
	fs.BoolVar(&c.Version, "version", false, "print the version and exit")

	// An operator's first day (issue 15): a missing store directory is a
	// likely typo, created only when asked.
	fs.BoolVar(&c.CreateStore, "create-store", false, "create the directory of a bolt: store when it does not exist (otherwise a missing directory is refused as a likely typo; --dev creates it)")

	// Environment first, so flags win.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	c.flagNames = cli.FlagNames(fs)
	if err := cli.Parse(fs, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(help, usageHeader)
			cli.WriteFlags(help, fs, nil)
			return nil, flagHelp
		}
		return nil, fmt.Errorf("%w; run keydelivery --help for the flags", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q (flags start with --)", fs.Args())
	}
	// fs.Visit would also list flags set from the environment: look at
	// the arguments themselves.
	for _, a := range args[1:] {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "store" {
			c.storeFromFlag = true
		}
		if strings.HasPrefix(a, "-") && name == "listen" {
			c.listenSet = true
		}
	}
	if getenv(envName("listen")) != "" {
		c.listenSet = true
	}
	if len(c.TokenIssuers) == 0 {
		c.TokenIssuers = append(c.TokenIssuers, c.TokenOIDCIssuers...) // an OpenID Connect issuer's tokens name it (issue 16)
	}
	c.kekText = getenv("KD_KEK")
	c.redisPassword = getenv("KD_REDIS_PASSWORD")
	return c, nil
}

// The default budgets of failed authentications (issue 12): generous for a
// player or a script that gets its token wrong a few times, far below what
// a forger needs.
var (
	defaultLimitAuthFailures      = ratelimit.Limit{Rate: 20, Burst: 40}
	defaultLimitAdminAuthFailures = ratelimit.Limit{Rate: 5, Burst: 20}
)

// limitFlag is a ratelimit.Limit flag: RATE/UNIT[:BURST], or off.
type limitFlag struct{ l *ratelimit.Limit }

func (f limitFlag) String() string {
	if f.l == nil {
		return ""
	}
	return f.l.String()
}

func (f limitFlag) Set(s string) error {
	l, err := ratelimit.ParseLimit(s)
	if err != nil {
		return err
	}
	*f.l = l
	return nil
}

// devDefaults fills in what --dev generates.
func (c *config) devDefaults(m devMaterial) {
	if len(c.TokenCerts) == 0 {
		c.TokenCerts = []string{m.CertFile}
	}
	if c.KEKFile == "" && c.kekText == "" {
		c.KEKFile = m.KEKFile
	}
	if c.AdminCredentialsFile == "" {
		c.AdminCredentialsFile = m.CredentialsFile
	}
	if len(c.TokenIssuers) == 0 {
		c.TokenIssuers = []string{devIssuer}
	}
	if c.TokenAudience == "" {
		c.TokenAudience = devAudience
	}
	if len(c.CORSOrigins) == 0 {
		c.CORSOrigins = []string{"*"}
	}
	if c.ProtectionCert == "" && c.ProtectionKey == "" {
		c.ProtectionCert, c.ProtectionKey = m.ProtectionCertFile, m.ProtectionKeyFile
	}
	// Dev mode listens on loopback only, unless told otherwise.
	if !c.listenSet {
		c.Listen = "127.0.0.1:8080"
	}
	if c.DevTLS && c.TLSCert == "" && c.TLSKey == "" {
		c.TLSCert, c.TLSKey = m.TLSCertFile, m.TLSKeyFile
	}
}

func (c *config) storeSpec() string {
	if c.Store != "" {
		return c.Store
	}
	return "bolt:" + filepath.Join(c.DataDir, "keys.db")
}

// validate checks everything that can be checked without side effects.
func (c *config) validate() error {
	var errs []error
	errs = append(errs, c.validateTrustSources()...)
	if len(c.TokenIssuers) == 0 {
		errs = append(errs, errors.New("--token-issuer is required"))
	}
	if c.TokenAudience == "" {
		errs = append(errs, errors.New("--token-audience is required"))
	}
	if c.KEKFile == "" && c.kekText == "" {
		errs = append(errs, errors.New("a key-encryption key is required: --kek-file or KD_KEK (generate one with: kdctl kek generate)"))
	}
	if c.TokenLeeway < 0 || c.TokenLeeway > 5*time.Minute {
		errs = append(errs, fmt.Errorf("--token-leeway %s: must be between 0 and 5m", c.TokenLeeway))
	}
	if c.TokenMaxLifetime < 0 {
		errs = append(errs, errors.New("--token-max-lifetime must not be negative"))
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("--public-url %q: want an http or https URL such as https://keys.example.com", c.PublicURL))
		}
	}
	if (c.ProtectionCert == "") != (c.ProtectionKey == "") {
		errs = append(errs, errors.New("--protection-cert and --protection-key go together"))
	}
	if c.LicenseMaxKIDs < 1 || c.LicenseMaxKIDs > 1024 {
		errs = append(errs, fmt.Errorf("--license-max-kids %d: must be between 1 and 1024", c.LicenseMaxKIDs))
	}
	if c.LicenseTimeout <= 0 {
		errs = append(errs, errors.New("--license-timeout must be positive"))
	}
	if c.TokenCacheSize < 0 || c.KeyCacheTTL < 0 || (c.KeyCacheTTL > 0 && c.KeyCacheSize <= 0) {
		errs = append(errs, errors.New("--token-cache-size and --key-cache-ttl must not be negative, and --key-cache-size must be positive when the key cache is on"))
	}
	if c.DeletedRetention < 0 {
		errs = append(errs, errors.New("--deleted-retention must not be negative"))
	}
	if c.MaxImportBytes <= 0 {
		errs = append(errs, errors.New("--max-import-bytes must be positive"))
	}
	if c.StoreTimeout <= 0 {
		errs = append(errs, errors.New("--store-timeout must be positive"))
	}
	if c.DrainTimeout <= 0 || c.DrainDelay < 0 {
		errs = append(errs, errors.New("--drain-timeout must be positive and --drain-delay not negative"))
	}
	// SPEKE v2 and encrypted CPIX (issue 14).
	if (c.CPIXRecipientCert == "") != (c.CPIXRecipientKey == "") {
		errs = append(errs, errors.New("--cpix-recipient-cert and --cpix-recipient-key go together"))
	}
	if len(c.WidevineProvider) > 256 {
		errs = append(errs, errors.New("--widevine-provider: at most 256 bytes"))
	}

	for name, addr := range map[string]string{"--listen": c.Listen, "--admin-listen": c.AdminListen} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", name, addr, err))
		}
	}
	if _, err := parseLogLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.validateEdge()...)
	// The store (issue 15): one of the accepted forms, and a bolt file in a
	// directory that exists (unless it is to be created). The CORS
	// origins, as the delivery plane will compile them.
	if err := c.checkStore(); err != nil {
		errs = append(errs, err)
	}
	if err := delivery.CheckCORSOrigins(c.CORSOrigins); err != nil {
		errs = append(errs, fmt.Errorf("--cors-origins: %w", err))
	}
	errs = append(errs, c.validateDurability()...)
	return errors.Join(errs...)
}

// validateEdge checks the HTTPS, connection and proxy settings.
func (c *config) validateEdge() []error {
	var errs []error
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if (c.AdminTLSCert == "") != (c.AdminTLSKey == "") {
		errs = append(errs, errors.New("--admin-tls-cert and --admin-tls-key go together"))
	}
	if c.AdminClientCA != "" && c.AdminTLSCert == "" {
		errs = append(errs, errors.New("--admin-client-ca needs --admin-tls-cert and --admin-tls-key: client certificates are checked in the TLS handshake"))
	}
	if len(c.ACMEDomains) > 0 && c.TLSCert != "" {
		errs = append(errs, errors.New("--acme-domain and --tls-cert both set the delivery plane's certificate: use one"))
	}
	for _, d := range c.ACMEDomains {
		if strings.Contains(d, "*") || !strings.Contains(d, ".") || net.ParseIP(d) != nil || strings.ContainsAny(d, "/: ") {
			errs = append(errs, fmt.Errorf("--acme-domain %q: want a DNS name with a dot, such as keys.example.com (no wildcard, no address)", d))
		}
	}
	if len(c.ACMEDomains) == 0 && (c.ACMEHTTPListen != "" || c.ACMEEmail != "" || c.ACMEDirectoryCA != "") {
		errs = append(errs, errors.New("--acme-email, --acme-directory-ca and --acme-http-listen need --acme-domain"))
	}
	if u, err := url.Parse(c.ACMEDirectory); err != nil || u.Scheme != "https" || u.Host == "" {
		errs = append(errs, fmt.Errorf("--acme-directory %q: want an https URL", c.ACMEDirectory))
	}
	if c.ACMEHTTPListen != "" {
		if _, _, err := net.SplitHostPort(c.ACMEHTTPListen); err != nil {
			errs = append(errs, fmt.Errorf("--acme-http-listen %q: %w", c.ACMEHTTPListen, err))
		}
	}
	if c.H2C && (c.TLSCert != "" || len(c.ACMEDomains) > 0) {
		errs = append(errs, errors.New("--h2c is for a delivery plane without TLS (with TLS, HTTP/2 is negotiated by ALPN)"))
	}
	if c.ProxyProtocol && len(c.TrustedProxies) == 0 {
		errs = append(errs, errors.New("--proxy-protocol needs --trusted-proxies: only those peers may send a PROXY header"))
	}
	if _, err := netedge.ParseHeader(c.TrustedProxiesHeader); err != nil {
		errs = append(errs, fmt.Errorf("--trusted-proxies-header %q: want X-Forwarded-For or Forwarded", c.TrustedProxiesHeader))
	}
	if _, err := netedge.ParseProxies(c.TrustedProxies, netedge.XForwardedFor); err != nil {
		errs = append(errs, fmt.Errorf("--trusted-proxies: %w", err))
	}
	if c.MaxConnections < 0 {
		errs = append(errs, errors.New("--max-connections must not be negative (0: no cap)"))
	}
	if c.IdleTimeout <= 0 || c.HeaderTimeout <= 0 || c.RequestTimeout <= 0 || c.AdminRequestTimeout <= 0 || c.TLSReload < 0 {
		errs = append(errs, errors.New("--idle-timeout, --header-timeout, --request-timeout and --admin-request-timeout must be positive, --tls-reload not negative"))
	}
	if c.DevTLS && !c.Dev {
		errs = append(errs, errors.New("--dev-tls is for --dev only; in production give --tls-cert and --tls-key, or --acme-domain"))
	}
	return errs
}

// validateTrustSources checks the token trust sources (issue 16): at least
// one source, well-formed URLs, positive refresh intervals.
func (c *config) validateTrustSources() []error {
	var errs []error
	if len(c.TokenCerts)+len(c.TokenKeyVaultCerts)+len(c.TokenOIDCIssuers)+len(c.TokenJWKSURLs) == 0 {
		errs = append(errs, errors.New("--token-certs is required (the token-signing certificates to trust), or another trust source: --token-keyvault-cert, --token-oidc-issuer, --token-jwks-url"))
	}
	for _, u := range c.TokenKeyVaultCerts {
		if _, _, err := keyvault.ParseCertificateURL(u); err != nil {
			errs = append(errs, fmt.Errorf("--token-keyvault-cert: %w", err))
		}
	}
	for _, u := range c.TokenOIDCIssuers {
		if err := jwks.CheckURL(u); err != nil {
			errs = append(errs, fmt.Errorf("--token-oidc-issuer: %w", err))
		}
		// An issuer's keys verify only tokens whose iss is that issuer,
		// and iss must be one of --token-issuer: without it there, not
		// one of its tokens could be accepted.
		if !slices.Contains(c.TokenIssuers, u) {
			errs = append(errs, fmt.Errorf("--token-oidc-issuer %s is not among --token-issuer (%s): its keys verify only tokens whose iss is %s, which would all be refused as wrong_issuer; add --token-issuer %s", u, strings.Join(c.TokenIssuers, ", "), u, u))
		}
	}
	for _, u := range c.TokenJWKSURLs {
		if err := jwks.CheckURL(u); err != nil {
			errs = append(errs, fmt.Errorf("--token-jwks-url: %w", err))
		}
	}
	if c.TokenKeyVaultRefresh < time.Second || c.TokenJWKSRefresh < time.Second {
		errs = append(errs, errors.New("--token-keyvault-refresh and --token-jwks-refresh must be at least 1s"))
	}
	return errs
}

// storeForms lists the accepted --store forms, for error messages. It
// shows no password placeholder: a password never goes into --store.
const storeForms = "bolt:PATH (the embedded store: a file), redis://[user@]host:port/db, rediss://[user@]host:port/db (TLS), " +
	"redis+sentinel://[user@]h1:p1,h2:p2/MASTERNAME[?db=N], redis+cluster://[user@]h1:p1,h2:p2"

// checkStore checks the store spec without touching the store: its form,
// no password in a flag, and for bolt: a directory that exists, unless
// --dev or --create-store may create it.
func (c *config) checkStore() error {
	spec := c.storeSpec()
	if path, ok := strings.CutPrefix(spec, "bolt:"); ok {
		if path == "" {
			return fmt.Errorf("--store bolt:PATH needs a path; the accepted forms are %s", storeForms)
		}
		if c.Dev || c.CreateStore {
			return nil
		}
		dir := filepath.Dir(path)
		switch fi, err := os.Stat(dir); {
		case errors.Is(err, fs.ErrNotExist):
			what := "--store " + spec
			if c.Store == "" {
				what = "the store " + spec + " (the default, under --data-dir " + c.DataDir + ")"
			}
			return fmt.Errorf("%s: the directory %s does not exist; check the path (a new store is made only in an existing directory: create it, or pass --create-store)", what, dir)
		case err != nil:
			return fmt.Errorf("--store %s: %w", spec, err)
		case !fi.IsDir():
			return fmt.Errorf("--store %s: %s is not a directory", spec, dir)
		}
		return nil
	}
	if !strings.Contains(spec, "://") {
		// Not quoted when it may hold a password (user:pass@host).
		msg := "the --store value is not a store URL"
		if !strings.Contains(spec, "@") {
			msg = fmt.Sprintf("--store %q is not a store URL", spec)
			if hint := boltHint(spec); hint != "" {
				msg += " (did you mean " + hint + "?)"
			}
		}
		return fmt.Errorf("%s; the accepted forms are %s", msg, storeForms)
	}
	if err := redisstore.CheckURL(spec); err != nil {
		return fmt.Errorf("--store: the accepted forms are %s; this one: %w", storeForms, err)
	}
	if u, err := url.Parse(spec); err == nil {
		if _, hasPass := u.User.Password(); hasPass && c.storeFromFlag {
			return errors.New("--store holds a password: flags are visible to every user of the machine; put the password in --redis-password-file or KD_REDIS_PASSWORD, or the whole URL in KD_STORE")
		}
	}
	return nil
}

// boltHint guesses the bolt: URL meant by a store spec without a scheme:
// "bolt/data/x.db" or "bolt:" forgotten before a path.
func boltHint(spec string) string {
	if rest, ok := strings.CutPrefix(spec, "bolt"); ok && rest != "" && (rest[0] == '/' || rest[0] == '=') {
		return "bolt:" + strings.TrimPrefix(rest, "=")
	}
	if strings.ContainsRune(spec, '/') || strings.HasSuffix(spec, ".db") {
		return "bolt:" + spec
	}
	return ""
}

// knownEnv are the KD_ variables that are not flags: the server's secrets,
// and kdctl's, which an operator's shell often holds too.
var knownEnv = []string{"KD_KEK", "KD_REDIS_PASSWORD", "KD_SERVER", "KD_ADMIN_TOKEN", "KD_ADMIN_TOKEN_FILE",
	"KD_CACERT", "KD_CERT", "KD_KEY"}

// unknownEnv returns a warning for each KD_ variable of environ ("NAME=value"
// entries) that sets nothing, with the nearest known name.
func (c *config) unknownEnv(environ []string) []string {
	known := slices.Clone(knownEnv)
	for _, f := range c.flagNames {
		known = append(known, envName(f))
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "KD_") || slices.Contains(known, name) {
			continue
		}
		msg := name + " sets nothing: no flag is called --" + strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, "KD_"), "_", "-"))
		if near := cli.Nearest(name, known); len(near) > 0 {
			msg += " (did you mean " + cli.OrList(near) + "?)"
		}
		out = append(out, msg)
	}
	return out
}

// validateDurability checks the durability flags (issue 11).
func (c *config) validateDurability() []error {
	var errs []error
	if _, _, err := c.waitReplicas(); err != nil {
		errs = append(errs, err)
	}
	if c.RedisWaitTimeout <= 0 || c.StoreCheckInterval <= 0 {
		errs = append(errs, errors.New("--redis-wait-timeout and --store-check-interval must be positive"))
	}
	if strings.HasPrefix(c.storeSpec(), "bolt:") && (c.RedisWaitAOF || c.RedisRequireDurable) {
		errs = append(errs, errors.New("--redis-wait-aof and --redis-require-durable need a Redis store (--store redis://...)"))
	}
	return errs
}

// waitReplicas parses --redis-wait-replicas: auto, or a number.
func (c *config) waitReplicas() (n int, auto bool, err error) {
	if c.RedisWaitReplicas == "auto" {
		return 0, true, nil
	}
	n, err = strconv.Atoi(c.RedisWaitReplicas)
	if err != nil || n < 0 || n > 64 || c.RedisWaitReplicas[0] == '+' {
		return 0, false, fmt.Errorf("--redis-wait-replicas %q: want auto or a number of replicas from 0 to 64", c.RedisWaitReplicas)
	}
	return n, false, nil
}

func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
