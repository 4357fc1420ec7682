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

	"golang.org/x/sync/errgroup"

	"github.com/keydelivery/keydelivery/admin"
	"github.com/keydelivery/keydelivery/ams"
	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/delivery"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/keystore/boltstore"
	"github.com/keydelivery/keydelivery/keystore/redisstore"
	"github.com/keydelivery/keydelivery/metrics"
)

// version and commit are stamped at build time with -ldflags "-X main.version=...".
var version, commit = "", ""

func buildInfo() metrics.BuildInfo {
	b := metrics.BuildInfo{Version: version, Commit: commit}
	if info, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" {
			b.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && b.Commit == "" {
				b.Commit = s.Value
			}
		}
	}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	return b
}

func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// run is the whole server: main only calls it. It returns when ctx ends or
// SIGINT/SIGTERM arrives (after draining), or on a fatal error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flagHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if cfg.Version {
		b := buildInfo()
		fmt.Fprintf(stdout, "keydelivery %s %s\n", b.Version, b.Commit)
		return nil
	}
	level, err := parseLogLevel(cfg.LogLevel)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	var dev devMaterial
	if cfg.Dev {
		if dev, err = ensureDevMaterial(cfg.DataDir, time.Now()); err != nil {
			return fmt.Errorf("dev mode: %w", err)
		}
		cfg.devDefaults(dev)
		log.Warn("DEV MODE: generated material is for development only", "data_dir", cfg.DataDir, "generated_now", dev.Created)
	}
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}

	gcPercent := tuneGC(getenv)

	ring, err := loadKeyring(cfg)
	if err != nil {
		return err
	}
	trust, err := auth.NewTrust(cfg.TokenCerts, log)
	if err != nil {
		return err
	}
	reg := metrics.NewRegistry(buildInfo())
	verifier, err := auth.NewVerifier(trust, auth.Options{
		Issuers: cfg.TokenIssuers, Audience: cfg.TokenAudience, Leeway: cfg.TokenLeeway,
		MaxLifetime: cfg.TokenMaxLifetime, AllowUnbound: cfg.AllowUnboundTokens,
		ParseKeyID: func(s string) ([16]byte, error) { return keystore.ParseKeyID(s) },
		Registerer: reg,
	})
	if err != nil {
		return err
	}
	var protCert *x509.Certificate
	var protKey *rsa.PrivateKey
	if cfg.ProtectionCert != "" {
		if protCert, protKey, err = ams.LoadProtectionKeyPair(cfg.ProtectionCert, cfg.ProtectionKey); err != nil {
			return fmt.Errorf("protection certificate: %w", err)
		}
	}
	var creds *admin.Credentials
	if cfg.AdminCredentialsFile != "" {
		if creds, err = admin.LoadCredentials(cfg.AdminCredentialsFile); err != nil {
			return err
		}
	}
	if cfg.CheckConfig {
		fmt.Fprintf(stdout, "configuration ok: store %s, %d trusted token certificate(s), %d KEK(s) (primary %s)\n",
			redactStore(cfg.storeSpec()), len(trust.Certificates()), len(ring.IDs()), ring.PrimaryID())
		return nil
	}

	store, err := openStore(cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	backend := "bolt"
	if rs, ok := store.(*redisstore.Store); ok {
		backend = "redis"
		reg.MustRegister(metrics.NewRedisPoolCollector(func() metrics.RedisPoolStats {
			p := rs.PoolStats()
			return metrics.RedisPoolStats{Hits: uint64(p.Hits), Misses: uint64(p.Misses), Timeouts: uint64(p.Timeouts),
				TotalConns: uint64(p.TotalConns), IdleConns: uint64(p.IdleConns), StaleConns: uint64(p.StaleConns)}
		}))
	}
	reg.MustRegister(metrics.NewCertificateCollector(func() []metrics.Certificate {
		certs := trust.Certificates()
		out := make([]metrics.Certificate, len(certs))
		for i, c := range certs {
			out[i] = metrics.Certificate{Thumbprint: c.X5T(), Subject: c.Subject, NotAfter: c.NotAfter}
		}
		return out
	}))
	var cache *keystore.Cache // set below when on; invalidated on every local change
	keys := keystore.NewKeys(store, ring, keystore.Options{Timeout: cfg.StoreTimeout, Rand: rand.Reader,
		Registerer: reg, Backend: backend,
		OnChange: func(id keystore.KeyID) {
			if cache != nil {
				cache.Invalidate(id)
			}
		}})
	startCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = keys.CheckKEKs(startCtx)
	cancel()
	if err != nil {
		return err
	}

	audit, auditCloser, err := admin.OpenAudit(cfg.AuditLog)
	if err != nil {
		return err
	}
	defer auditCloser.Close()

	var keySource interface {
		Get(context.Context, keystore.KeyID) (keystore.Key, error)
	} = keys
	if cfg.KeyCacheTTL > 0 {
		if cache, err = keystore.NewCache(keys, keystore.CacheOptions{TTL: cfg.KeyCacheTTL, Size: cfg.KeyCacheSize, Registerer: reg}); err != nil {
			return err
		}
		keySource = cache
	}
	var tokens interface {
		Verify(string) (auth.Claims, error)
	} = verifier
	if cfg.TokenCacheSize > 0 {
		if tokens, err = auth.NewCachedVerifier(verifier, cfg.TokenCacheSize, reg); err != nil {
			return err
		}
	}
	var serving atomic.Bool
	deliveryHandler, err := delivery.New(delivery.Options{
		Log: log, Verifier: tokens, Keys: keySource, Registerer: reg,
		CORSOrigins: cfg.CORSOrigins, Serving: serving.Load, AccessLog: cfg.AccessLog,
		MaxLicenseKIDs: cfg.LicenseMaxKIDs, LicenseTimeout: cfg.LicenseTimeout,
		PersistentLicenses: cfg.ClearKeyPersistent,
	})
	if err != nil {
		return err
	}
	dl, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("delivery listener: %w", err)
	}
	al, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		dl.Close()
		return fmt.Errorf("admin listener: %w", err)
	}
	if cfg.PublicURL == "" && cfg.Dev {
		cfg.PublicURL = "http://" + displayAddr(dl.Addr())
	}
	adminHandler, err := admin.New(admin.Options{
		Log: log, Registerer: reg, Metrics: metrics.Handler(reg),
		Checks: []admin.Check{
			{Name: "serving", Check: func(context.Context) error {
				if !serving.Load() {
					return errors.New("not serving (starting or draining)")
				}
				return nil
			}},
			{Name: "store", Check: keys.Ping},
			{Name: "trust", Check: func(context.Context) error {
				if len(trust.Certificates()) == 0 {
					return errors.New("no trusted token certificate")
				}
				return nil
			}},
		},
		Keys: keys, Credentials: creds, Audit: audit, Certificates: trust.Certificates,
		TokenLeeway: cfg.TokenLeeway, PublicURL: cfg.PublicURL, MaxImportBytes: cfg.MaxImportBytes,
		ProtectionCert: protCert, ProtectionKey: protKey,
	})
	if err != nil {
		dl.Close()
		al.Close()
		return err
	}
	// Players' requests are small and quick; the admin plane's bulk
	// imports and exports (tens of megabytes of CPIX) get minutes.
	deliverySrv := newHTTPServer(deliveryHandler, log, 15*time.Second)
	adminSrv := newHTTPServer(adminHandler, log, 5*time.Minute)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serve(deliverySrv, dl) })
	g.Go(func() error { return serve(adminSrv, al) })
	if cfg.TokenCertsReload > 0 {
		g.Go(func() error { trust.Watch(gctx, cfg.TokenCertsReload); return nil })
	}
	if n, ok := store.(keystore.Notifier); ok && cache != nil {
		g.Go(func() error {
			return n.Listen(gctx, func(id keystore.KeyID, all bool) {
				if all {
					cache.InvalidateAll()
				} else {
					cache.Invalidate(id)
				}
			})
		})
	}
	if cfg.DeletedRetention > 0 {
		g.Go(func() error { sweepDeleted(gctx, keys, audit, cfg.DeletedRetention, time.Hour, log); return nil })
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
				log.Info("SIGHUP: reloading token certificates and admin credentials")
				_ = trust.Reload() // logs the new set, or why it kept the old one
				if creds != nil {
					if err := creds.Reload(); err != nil {
						log.Warn("admin credentials reload failed; keeping the previous set", "err", err)
					}
				}
			}
		}
	})
	g.Go(func() error {
		<-gctx.Done()
		serving.Store(false)
		log.Info("stopping: readiness now fails", "drain_delay", cfg.DrainDelay.String())
		time.Sleep(cfg.DrainDelay)
		sctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
		defer cancel()
		err := deliverySrv.Shutdown(sctx)
		if aerr := adminSrv.Shutdown(sctx); err == nil {
			err = aerr
		}
		if err != nil {
			return fmt.Errorf("drain: %w", err)
		}
		return nil
	})

	serving.Store(true)
	log.Info("listening", "plane", "delivery", "addr", dl.Addr().String())
	log.Info("listening", "plane", "admin", "addr", al.Addr().String())
	log.Info("keydelivery ready", "version", buildInfo().Version, "store", redactStore(cfg.storeSpec()), "gogc", gcPercent)
	if cfg.Dev {
		printDevBanner(stdout, dev, "http://"+displayAddr(dl.Addr()), "http://"+displayAddr(al.Addr()))
	}
	err = g.Wait()
	log.Info("stopped")
	return err
}

// sweepDeleted purges, now and then every interval, the keys soft-deleted
// longer than retention ago, and writes the purged KIDs to the audit log
// (operation keys.purge, credential system, source retention). Several
// instances on one Redis may sweep at once: each purge is an atomic
// check-and-delete, so a key is purged, and audited, once.
func sweepDeleted(ctx context.Context, keys *keystore.Keys, audit *admin.Audit, retention, interval time.Duration, log *slog.Logger) {
	for {
		purged, err := keys.PurgeDeleted(ctx, time.Now().Add(-retention))
		kids := make([]string, len(purged))
		for i, id := range purged {
			kids[i] = id.String()
			log.Info("deleted key purged after the retention period", "kid", kids[i], "retention", retention.String())
		}
		if len(kids) > 0 {
			if aerr := audit.Record("retention", "keys.purge", kids, "ok"); aerr != nil {
				log.Error("writing the audit record of a retention purge failed", "kids", kids, "err", aerr)
			}
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("purging deleted keys failed; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func serve(srv *http.Server, l net.Listener) error {
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newHTTPServer bounds every phase of a connection; body is the time a
// request may take to read and to answer (ReadTimeout and WriteTimeout).
// MaxHeaderBytes leaves room for an 8 KiB token.
func newHTTPServer(h http.Handler, log *slog.Logger, body time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       body,
		WriteTimeout:      body,
		IdleTimeout:       120 * time.Second,
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
		return boltstore.Open(path, 2*time.Second)
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
	return redisstore.New(redisstore.Options{URL: spec, Password: password, PoolSize: cfg.RedisPoolSize, AutoPipeline: cfg.RedisAutoPipeline})
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
