package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/keydelivery/keydelivery/admin"
	"github.com/keydelivery/keydelivery/admin/amsapi"
	"github.com/keydelivery/keydelivery/admin/audit"
	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/admin/speke"
	"github.com/keydelivery/keydelivery/ams"
	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/cpix"
	"github.com/keydelivery/keydelivery/delivery"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	buildversion "github.com/keydelivery/keydelivery/internal/version"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/keystore/boltstore"
	"github.com/keydelivery/keydelivery/keystore/redisstore"
	"github.com/keydelivery/keydelivery/metrics"
)

// version and commit are stamped at build time with -ldflags "-X main.version=...".
var version, commit = "", ""

func buildInfo() metrics.BuildInfo {
	i := buildversion.Read(version, commit)
	return metrics.BuildInfo{Version: i.Version, Commit: i.Revision}
}

func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// run is the whole server: main only calls it. It reads the configuration,
// builds the dependencies (build) and serves them (serve) until ctx ends or
// SIGINT/SIGTERM arrives (after draining), or a fatal error. environ, the
// environment's "NAME=value" entries (main passes os.Environ()), is only
// looked at for KD_ variables that set nothing; values come from getenv.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, environ ...string) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A closed stdout or stderr (the reader of a pipe gone) must not kill
	// the server: by default Go exits on SIGPIPE from a write to fd 1 or 2.
	// Ignored, the write fails with EPIPE instead: an audit record then
	// answers 503 audit_unavailable, a log line is counted and dropped.
	signal.Ignore(syscall.SIGPIPE)

	cfg, err := parseConfig(args, getenv, stdout)
	if errors.Is(err, flagHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if cfg.Version {
		fmt.Fprintf(stdout, "keydelivery %s\n", buildversion.Read(version, commit))
		return nil
	}
	level, err := parseLogLevel(cfg.LogLevel)
	if err != nil {
		return err
	}
	// Every log line is redacted by value (no credential reaches it
	// whatever code wrote it), and a failed write is counted, never fatal.
	logOut := newLogWriter(stderr)
	log := slog.New(httpedge.RedactingHandler(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: level})))
	for _, w := range cfg.unknownEnv(environ) {
		log.Warn("unknown environment variable: " + w)
	}

	var dev devMaterial
	if cfg.Dev {
		if dev, err = ensureDevMaterial(cfg.DataDir, time.Now()); err != nil {
			return fmt.Errorf("dev mode: %w", err)
		}
		if cfg.DevTLS {
			if err := ensureDevTLS(&dev, time.Now()); err != nil {
				return fmt.Errorf("dev mode TLS: %w", err)
			}
		}
		cfg.devDefaults(dev)
		log.Warn("DEV MODE: generated material is for development only", "data_dir", cfg.DataDir, "generated_now", dev.Created)
	}
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	gcPercent := tuneGC(getenv)

	m, err := loadChecked(ctx, cfg, log)
	if err != nil {
		return err
	}
	m.reg.MustRegister(logOut.failures)
	m.warnNoCredentials(log)
	if cfg.CheckConfig {
		return checkConfig(ctx, cfg, log, m, stdout)
	}
	s, err := build(ctx, cfg, log, m)
	if err != nil {
		return err
	}
	defer s.close()
	log.Info("listening", "plane", "delivery", "addr", s.dl.Addr().String(), "scheme", scheme(m.edge.delivery))
	log.Info("listening", "plane", "admin", "addr", s.al.Addr().String(), "scheme", scheme(m.edge.admin))
	log.Info("keydelivery ready", "version", buildInfo().Version, "store", redactStore(cfg.storeSpec()), "gogc", gcPercent)
	if cfg.Dev {
		printDevBanner(stdout, dev, scheme(m.edge.delivery)+"://"+displayAddr(s.dl.Addr()), scheme(m.edge.admin)+"://"+displayAddr(s.al.Addr()))
		if cfg.DevTLS {
			printDevTLS(stdout, dev)
		}
	}
	err = s.serve(ctx)
	log.Info("stopped")
	return err
}

// checked is what the configuration names and the server checks before it
// touches the store: the key-encryption keys, the token trust, the metrics
// registry, the AMS protection pair and the admin credentials.
type checked struct {
	reg      *prometheus.Registry
	ring     *keystore.Keyring
	trust    *auth.Trust
	verifier *auth.Verifier
	protCert *x509.Certificate
	protKey  *rsa.PrivateKey
	creds    *credentials.Set
	edge     *edge
	// cpixRecipient decrypts CPIX imports encrypted to this server
	// (--cpix-recipient-cert/--cpix-recipient-key, else the protection
	// pair); nil when neither is configured.
	cpixRecipient *rsa.PrivateKey
}

// loadChecked reads and checks what --check-config checks.
func loadChecked(ctx context.Context, cfg *config, log *slog.Logger) (*checked, error) {
	m := &checked{reg: metrics.NewRegistry(buildInfo())}
	var err error
	if m.ring, err = loadKeyring(cfg); err != nil {
		return nil, err
	}
	if m.trust, err = loadTrust(ctx, cfg, log, m.reg); err != nil {
		return nil, err
	}
	m.verifier, err = auth.NewVerifier(m.trust, auth.Options{
		Issuers: cfg.TokenIssuers, Audience: cfg.TokenAudience, Leeway: cfg.TokenLeeway,
		MaxLifetime: cfg.TokenMaxLifetime, AllowUnbound: cfg.AllowUnboundTokens, RequireKeyID: cfg.RequireTokenKeyID,
		ParseKeyID: func(s string) ([16]byte, error) { return keystore.ParseKeyID(s) },
		Registerer: m.reg,
	})
	if err != nil {
		return nil, err
	}
	if cfg.ProtectionCert != "" {
		if m.protCert, m.protKey, err = ams.LoadProtectionKeyPair(cfg.ProtectionCert, cfg.ProtectionKey); err != nil {
			return nil, fmt.Errorf("protection certificate: %w", err)
		}
	}
	if cfg.AdminCredentialsFile != "" {
		if m.creds, err = credentials.Load(cfg.AdminCredentialsFile); err != nil {
			return nil, err
		}
	}
	if m.edge, err = loadEdge(cfg, log, m.reg); err != nil {
		return nil, err
	}
	if m.cpixRecipient, err = loadCPIXRecipient(cfg, m); err != nil {
		return nil, err
	}
	return m, nil
}

// loadCPIXRecipient loads the key CPIX imports may be encrypted to: the
// --cpix-recipient-cert/--cpix-recipient-key pair (an RSA certificate of at
// least 2048 bits, as SPEKE requires), else the AMS protection pair.
func loadCPIXRecipient(cfg *config, m *checked) (*rsa.PrivateKey, error) {
	if cfg.CPIXRecipientCert == "" {
		return m.protKey, nil
	}
	cert, key, err := ams.LoadProtectionKeyPair(cfg.CPIXRecipientCert, cfg.CPIXRecipientKey)
	if err != nil {
		return nil, fmt.Errorf("CPIX recipient certificate: %w", err)
	}
	if _, _, err := cpix.RecipientKey(cert.Raw); err != nil {
		return nil, fmt.Errorf("--cpix-recipient-cert: %w", err)
	}
	return key, nil
}

// app is the built server: every dependency, wired, with its listeners
// open, ready to serve.
type app struct {
	cfg     *config
	log     *slog.Logger
	m       *checked
	store   keystore.Store
	keys    *keystore.Keys
	audit   *audit.Log
	serving atomic.Bool
	dl, al  net.Listener
	// delivery and admin are the two planes' servers.
	delivery, admin *http.Server
	// acmeHTTP answers ACME HTTP-01 challenges on acmeL (--acme-http-listen).
	acmeHTTP *http.Server
	acmeL    net.Listener
	closers  []io.Closer
	// durable and newBolt are the durability checks' (issue 11).
	durable *durability
	newBolt bool
}

// build opens the store and builds everything on it, from the leaves up:
// the sealed key store (with its KEK check), the audit log, the caches, the
// delivery plane, and the admin plane with its APIs; then it opens the
// listeners. On error, whatever it opened is closed.
func build(ctx context.Context, cfg *config, log *slog.Logger, m *checked) (_ *app, err error) {
	s := &app{cfg: cfg, log: log, m: m}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	newBolt := isNewBoltStore(cfg)
	if s.store, err = openStore(cfg, log); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.store)
	backend := "bolt"
	if rs, ok := s.store.(*redisstore.Store); ok {
		backend = "redis"
		m.reg.MustRegister(metrics.NewRedisPoolCollector(func() metrics.RedisPoolStats {
			p := rs.PoolStats()
			return metrics.RedisPoolStats{Hits: uint64(p.Hits), Misses: uint64(p.Misses), Timeouts: uint64(p.Timeouts),
				TotalConns: uint64(p.TotalConns), IdleConns: uint64(p.IdleConns), StaleConns: uint64(p.StaleConns)}
		}))
	}
	m.reg.MustRegister(metrics.NewCertificateCollector(func() []metrics.Certificate {
		certs := m.trust.Certificates()
		out := make([]metrics.Certificate, len(certs))
		for i, c := range certs {
			out[i] = metrics.Certificate{Thumbprint: c.X5T(), Subject: c.Subject, NotAfter: c.NotAfter}
		}
		return out
	}))
	s.keys = keystore.NewKeys(s.store, m.ring, keystore.Options{Timeout: cfg.StoreTimeout, WriteTimeout: cfg.StoreTimeout + cfg.RedisWaitTimeout,
		Rand: rand.Reader, Registerer: m.reg, Backend: backend})
	s.newBolt = newBolt
	if err = s.checkKEKs(ctx); err != nil {
		return nil, err
	}
	var auditCloser io.Closer
	if s.audit, auditCloser, err = audit.Open(cfg.AuditLog); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, auditCloser)

	deliveryHandler, err := s.buildDelivery()
	if err != nil {
		return nil, err
	}
	if s.dl, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("delivery listener: %w", err)
	}
	s.closers = append(s.closers, s.dl)
	if s.al, err = net.Listen("tcp", cfg.AdminListen); err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	s.closers = append(s.closers, s.al)
	if cfg.PublicURL == "" && cfg.Dev {
		cfg.PublicURL = scheme(m.edge.delivery) + "://" + displayAddr(s.dl.Addr())
	}
	adminHandler, err := s.buildAdmin()
	if err != nil {
		return nil, err
	}
	// Players' requests are small and quick; the admin plane's bulk
	// imports and exports (tens of megabytes of CPIX) get minutes, but only
	// once their credential is checked (plane.Options.AuthenticatedTimeout):
	// until then, the delivery plane's timeouts.
	s.delivery = newHTTPServer(deliveryHandler, log, cfg)
	s.admin = newHTTPServer(adminHandler, log, cfg)
	if err := s.buildEdge(); err != nil {
		return nil, err
	}
	return s, nil
}

// buildDelivery builds the delivery plane over the key cache (when on,
// invalidated by the key store's change events) and the verified-token
// cache (when on).
func (s *app) buildDelivery() (http.Handler, error) {
	cfg, m := s.cfg, s.m
	var keys interface {
		Get(context.Context, keystore.KeyID) (keystore.Key, error)
	} = s.keys
	if cfg.KeyCacheTTL > 0 {
		cache, err := keystore.NewCache(s.keys, keystore.CacheOptions{TTL: cfg.KeyCacheTTL, Size: cfg.KeyCacheSize, Registerer: m.reg})
		if err != nil {
			return nil, err
		}
		s.keys.Subscribe(cache.Apply)
		keys = cache
	}
	var tokens interface {
		Verify(string) (auth.Claims, error)
	} = m.verifier
	if cfg.TokenCacheSize > 0 {
		var err error
		if tokens, err = auth.NewCachedVerifier(m.verifier, cfg.TokenCacheSize, m.reg); err != nil {
			return nil, err
		}
	}
	return delivery.New(delivery.Options{
		Log: s.log, Verifier: tokens, Keys: keys, Registerer: m.reg,
		CORSOrigins: cfg.CORSOrigins, Serving: s.serving.Load, AccessLog: cfg.AccessLog,
		MaxLicenseKIDs: cfg.LicenseMaxKIDs, LicenseTimeout: cfg.LicenseTimeout,
		PersistentLicenses: cfg.ClearKeyPersistent, ClientAddr: m.edge.clientAddr,
		// Hostile clients (issue 12): replay limits, per-address budgets.
		Uses: s.keys, AuthFailures: cfg.LimitAuthFailures, Requests: cfg.LimitRequests,
	})
}

// buildAdmin builds the admin plane with its readiness checks and mounts the
// admin APIs on it: the native API, the AMS v2 API and SPEKE v2.
func (s *app) buildAdmin() (http.Handler, error) {
	cfg, m := s.cfg, s.m
	p, err := plane.New(plane.Options{
		Log: s.log, Registerer: m.reg, Metrics: metrics.Handler(m.reg),
		Checks: append([]plane.Check{
			{Name: "serving", Check: func(context.Context) error {
				if !s.serving.Load() {
					return errors.New("not serving (starting or draining)")
				}
				return nil
			}},
			{Name: "store", Check: s.keys.Ping},
			{Name: "trust", Check: func(context.Context) error { return m.trust.Ready() }, Detail: m.trust.Detail},
		}, append(s.edgeChecks(), s.durabilityChecks()...)...),
		Keys: s.keys, Credentials: m.creds, Audit: s.audit,
		ClientAddr: m.edge.clientAddr, AuthenticatedTimeout: cfg.AdminRequestTimeout,
		AuthFailures: cfg.LimitAdminAuthFailures,
	})
	if err != nil {
		return nil, err
	}
	if err := admin.Register(p, admin.Options{Certificates: m.trust.Certificates, Trust: m.trust, TokenLeeway: cfg.TokenLeeway,
		PublicURL: cfg.PublicURL, MaxImportBytes: cfg.MaxImportBytes, CPIXRecipient: m.cpixRecipient}); err != nil {
		return nil, err
	}
	if err := amsapi.Register(p, amsapi.Options{PublicURL: cfg.PublicURL, ProtectionCert: m.protCert, ProtectionKey: m.protKey}); err != nil {
		return nil, err
	}
	if err := speke.Register(p, speke.Options{PublicURL: cfg.PublicURL, WidevineProvider: cfg.WidevineProvider, UserAgent: "keydelivery/" + buildInfo().Version}); err != nil {
		return nil, err
	}
	return p, nil
}

// serve runs both planes and the background work (certificate reloads, the
// store's change announcements, the retention sweeper, SIGHUP reloads)
// until ctx ends, then drains: readiness fails at once, the listeners keep
// serving for --drain-delay, in-flight requests get --drain-timeout.
func (s *app) serve(ctx context.Context) error {
	cfg, log := s.cfg, s.log
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serve(s.delivery, s.dl) })
	g.Go(func() error { return serve(s.admin, s.al) })
	if cfg.TokenCertsReload > 0 {
		g.Go(func() error { s.m.trust.Watch(gctx, cfg.TokenCertsReload); return nil })
	}
	g.Go(func() error { s.m.trust.Refresh(gctx); return nil }) // remote trust sources (issue 16)
	g.Go(func() error { return s.keys.Watch(gctx) })
	s.watchEdge(g, gctx)
	g.Go(func() error { s.watchStore(gctx); return nil })
	if cfg.DeletedRetention > 0 {
		g.Go(func() error {
			sweepDeleted(gctx, s.keys, s.audit, cfg.DeletedRetention, time.Hour, time.Now, log)
			return nil
		})
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-hup:
				log.Info("SIGHUP: reloading token certificates, TLS certificates and admin credentials")
				_ = s.m.trust.Reload() // logs the new set, or why it kept the old one
				s.reloadTLS()
				if s.m.creds != nil {
					if err := s.m.creds.Reload(); err != nil {
						log.Warn("admin credentials reload failed; keeping the previous set", "err", err)
					}
				}
			}
		}
	})
	g.Go(func() error {
		<-gctx.Done()
		s.serving.Store(false)
		log.Info("stopping: readiness now fails", "drain_delay", cfg.DrainDelay.String())
		time.Sleep(cfg.DrainDelay)
		sctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
		defer cancel()
		err := s.delivery.Shutdown(sctx)
		if aerr := s.admin.Shutdown(sctx); err == nil {
			err = aerr
		}
		if err != nil {
			return fmt.Errorf("drain: %w", err)
		}
		return nil
	})
	s.serving.Store(true)
	return g.Wait()
}

// close releases what build opened, in reverse order.
func (s *app) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		_ = s.closers[i].Close()
	}
	s.closers = nil
}

// sweepDeleted purges, now and then every interval, the keys soft-deleted
// longer than retention ago by the clock now, and writes the purged KIDs to
// the audit log (operation keys.purge, credential system, source
// retention). Several instances on one Redis may sweep at once: each purge
// is an atomic check-and-delete, so a key is purged, and audited, once.
func sweepDeleted(ctx context.Context, keys *keystore.Keys, auditLog *audit.Log, retention, interval time.Duration, now func() time.Time, log *slog.Logger) {
	for {
		purged, err := keys.PurgeDeleted(ctx, now().Add(-retention))
		kids := make([]string, len(purged))
		for i, id := range purged {
			kids[i] = id.String()
			log.Info("deleted key purged after the retention period", "kid", kids[i], "retention", retention.String())
		}
		if len(kids) > 0 {
			if aerr := auditLog.System("retention", "keys.purge", kids, audit.OK); aerr != nil {
				log.Error("writing the audit record of a retention purge failed", "kids", kids, "err", aerr)
			}
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("purging deleted keys failed; will retry", "err", err)
		}
		// Purged values leave the store's files too (Redis: an AOF
		// rewrite), whoever purged them since the last sweep.
		if did, err := keys.CompactAfterPurges(ctx); err != nil && ctx.Err() == nil {
			log.Warn("compacting the store after purges failed; purged values stay in its files until the next rewrite", "err", err)
		} else if did {
			log.Info("store compaction started after purges (Redis: BGREWRITEAOF)")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// serve serves l with srv, over TLS when srv has a TLS configuration.
func serve(srv *http.Server, l net.Listener) error {
	var err error
	if srv.TLSConfig != nil {
		err = srv.ServeTLS(l, "", "") // the certificate comes from TLSConfig.GetCertificate
	} else {
		err = srv.Serve(l)
	}
	if !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newHTTPServer bounds every phase of a connection: the headers
// (--header-timeout), the whole request, read and answered
// (--request-timeout; the admin plane extends it once a credential
// matched), the idle time between requests (--idle-timeout). The TLS
// handshake counts against the header timeout. MaxHeaderBytes leaves room
// for an 8 KiB token.
func newHTTPServer(h http.Handler, log *slog.Logger, cfg *config) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.HeaderTimeout,
		ReadTimeout:       cfg.RequestTimeout,
		WriteTimeout:      cfg.RequestTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// displayAddr turns a wildcard listen address into one a person can paste.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func loadKeyring(cfg *config) (*keystore.Keyring, error) {
	if cfg.kekText != "" {
		if cfg.KEKFile != "" {
			return nil, errors.New("both KD_KEK and --kek-file are set: use one")
		}
		kr, err := keystore.ParseKeyring([]byte(cfg.kekText), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("%w (in KD_KEK)", err)
		}
		return kr, nil
	}
	return keystore.LoadKeyring(cfg.KEKFile, rand.Reader)
}

func openStore(cfg *config, log *slog.Logger) (keystore.Store, error) {
	spec := cfg.storeSpec()
	if path, ok := strings.CutPrefix(spec, "bolt:"); ok {
		return boltstore.Open(path, lockTimeout)
	}
	password := cfg.redisPassword
	if cfg.RedisPasswordFile != "" {
		p, err := readSecretFile(cfg.RedisPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("--redis-password-file: %w", err)
		}
		password = p
	}
	redisstore.SetLogger(log)
	waitN, waitAuto, _ := cfg.waitReplicas() // validated
	return redisstore.New(redisstore.Options{URL: spec, Password: password, PoolSize: cfg.RedisPoolSize, AutoPipeline: cfg.RedisAutoPipeline,
		WaitReplicas: waitN, WaitAuto: waitAuto, WaitTimeout: cfg.RedisWaitTimeout, WaitAOF: cfg.RedisWaitAOF})
}

// redactStore hides a password in a store URL for logs.
func redactStore(spec string) string {
	if strings.HasPrefix(spec, "bolt:") {
		return spec
	}
	if i := strings.Index(spec, "://"); i >= 0 {
		rest := spec[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			user, _, _ := strings.Cut(rest[:at], ":")
			return spec[:i+3] + user + ":xxxxx@" + rest[at+1:]
		}
	}
	return spec
}

// defaultGCPercent is the garbage collector's target (GOGC) when the
// environment sets none. Each request allocates a little (net/http's
// request, headers and buffers) while the caches and the registry stay
// live, so at Go's default of 100 the collector runs every few megabytes
// and marks the live heap each time: about 8% of the CPU of a cached
// request. At 300 it runs a fifth as often (about 9% less CPU per request
// measured); the heap may grow to four times the live data instead of two
// (GOMEMLIMIT caps it: deploy/kubernetes sets it under the container's
// limit). Measured in docs/benchmarks.md.
const defaultGCPercent = 300

// tuneGC sets the garbage collector's target to defaultGCPercent unless
// GOGC is set (which the runtime has applied already), and returns the
// target in force.
func tuneGC(getenv func(string) string) int {
	if getenv("GOGC") != "" {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	debug.SetGCPercent(defaultGCPercent)
	return defaultGCPercent
}
