package admin

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/ams"
	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/keystore"
)

// keyManager is what admin needs from the key store (keystore.Keys).
type keyManager interface {
	// Create seals and stores a key; ErrExists if the ID is taken.
	Create(ctx context.Context, k keystore.Key) (keystore.Key, error)
	// Metadata returns a key's record with Value zeroed, deleted keys
	// included; ErrNotFound when absent.
	Metadata(ctx context.Context, id keystore.KeyID) (keystore.Key, error)
	// Get returns a live key with its material (for export).
	Get(ctx context.Context, id keystore.KeyID) (keystore.Key, error)
	List(ctx context.Context, from keystore.KeyID, limit int) ([]keystore.Key, error)
	ListAsset(ctx context.Context, asset string, from keystore.KeyID, limit int) ([]keystore.KeyID, error)
	Delete(ctx context.Context, id keystore.KeyID) (keystore.Key, error)
	Restore(ctx context.Context, id keystore.KeyID) (keystore.Key, error)
	Purge(ctx context.Context, id keystore.KeyID) error
	Import(ctx context.Context, keys []keystore.Key) ([]keystore.ImportResult, error)
	// CreateKeySeed seals and stores a key seed; ErrExists if the ID is taken.
	CreateKeySeed(ctx context.Context, seed keystore.KeySeed) (keystore.KeySeed, error)
	// KeySeed returns a stored key seed, unsealed; ErrNotFound when absent.
	KeySeed(ctx context.Context, id keystore.KeyID) (keystore.KeySeed, error)
	// KeySeeds lists the stored key seeds without the seeds.
	KeySeeds(ctx context.Context) ([]keystore.KeySeed, error)
}

// Check is one readiness check run by GET /readyz. Its error text is shown
// to anyone who can reach the admin listener, so it must hold no secret.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// CheckTimeout bounds each readiness check.
const CheckTimeout = time.Second

// Options configures the admin plane. Log and Registerer are required; so
// are Keys and Audit when Credentials is set.
type Options struct {
	// Log receives request failures and the /api/ access log.
	Log *slog.Logger
	// Registerer receives the admin plane's metrics: the shared HTTP
	// request metrics labelled plane="admin", and
	// keydelivery_admin_operations_total{operation,result}.
	Registerer prometheus.Registerer
	// Metrics is served at GET /metrics without credentials (default: no
	// /metrics route).
	Metrics http.Handler
	// Checks are run by GET /readyz, in parallel, each with CheckTimeout.
	Checks []Check
	// Keys is the key store the /api/keys routes use.
	Keys keyManager
	// Credentials are the admin credentials. Default nil: every /api/
	// request is refused with 401.
	Credentials *Credentials
	// Audit receives one record per admin action.
	Audit *Audit
	// Certificates lists the trusted token-signing certificates for GET
	// /api/token-certificates (default: none).
	Certificates func() []auth.Certificate
	// Now is the clock (default time.Now).
	Now func() time.Time
	// TokenLeeway widens certificate validity when reporting status
	// (default auth.DefaultLeeway), as the verifier does.
	TokenLeeway time.Duration
	// Rand supplies generated KIDs and key values (default crypto/rand.Reader).
	Rand io.Reader
	// RetryAfter is the Retry-After sent with 503 (default 1s).
	RetryAfter time.Duration
	// PublicURL is the delivery plane's base URL as players see it, for
	// GET /api/keys/{kid}/delivery-url (default: none; that route then
	// answers 400 public_url_not_configured).
	PublicURL string
	// MaxImportBytes caps an import body (default 64 MiB).
	MaxImportBytes int64
	// ProtectionCert and ProtectionKey are the server's RSA protection
	// certificate and its private key, for the Azure Media Services v2
	// routes: clients encrypt EncryptedContentKey to the certificate (see
	// package ams). Both or neither must be set, and the key must belong to
	// the certificate. Default nil: POST /api/ContentKeys,
	// GET /api/GetProtectionKeyId and GET /api/GetProtectionKey answer 501
	// not_configured.
	ProtectionCert *x509.Certificate
	ProtectionKey  *rsa.PrivateKey
}

// Handler is the admin plane's http.Handler.
type Handler struct {
	e *echo.Echo
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.e.ServeHTTP(w, r) }

// server holds the admin plane's dependencies; handlers are its methods.
type server struct {
	log     *slog.Logger
	keys    keyManager
	creds   *Credentials
	audit   *Audit
	certs   func() []auth.Certificate
	checks  []Check
	now     func() time.Time
	leeway  time.Duration
	rand    io.Reader
	retry   string
	metrics *adminMetrics

	publicURL      string
	maxImportBytes int64

	protectionCert *x509.Certificate
	protectionKey  *rsa.PrivateKey
	protectionID   string // ams.ProtectionKeyID(protectionCert); "" when not configured

	// staticAPI holds the paths of the static /api/ routes, so that a
	// method they do not serve is 405 although /api/{contentKeySegment}
	// matches every path of one segment.
	staticAPI map[string]bool
	// router finds which methods a path has, for 405 under /api/ (whose
	// catch-all route answers every unknown path and method).
	router *echo.Echo
}

// New builds the admin plane.
func New(o Options) (*Handler, error) {
	if o.Log == nil || o.Registerer == nil {
		return nil, errors.New("admin: Log and Registerer are required")
	}
	if o.Credentials != nil && (o.Keys == nil || o.Audit == nil) {
		return nil, errors.New("admin: Keys and Audit are required when Credentials are set")
	}
	seen := map[string]bool{}
	for _, c := range o.Checks {
		if c.Name == "" || c.Check == nil {
			return nil, errors.New("admin: a readiness check needs a name and a function")
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("admin: readiness check %q appears twice", c.Name)
		}
		seen[c.Name] = true
	}
	if (o.ProtectionCert == nil) != (o.ProtectionKey == nil) {
		return nil, errors.New("admin: ProtectionCert and ProtectionKey go together: set both or neither")
	}
	if o.ProtectionCert != nil {
		pub, ok := o.ProtectionCert.PublicKey.(*rsa.PublicKey)
		if !ok || !pub.Equal(&o.ProtectionKey.PublicKey) {
			return nil, errors.New("admin: ProtectionKey does not belong to ProtectionCert")
		}
	}
	if o.Certificates == nil {
		o.Certificates = func() []auth.Certificate { return nil }
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TokenLeeway <= 0 {
		o.TokenLeeway = auth.DefaultLeeway
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	s := &server{
		log:     o.Log,
		keys:    o.Keys,
		creds:   o.Credentials,
		audit:   o.Audit,
		certs:   o.Certificates,
		checks:  o.Checks,
		now:     o.Now,
		leeway:  o.TokenLeeway,
		rand:    o.Rand,
		retry:   httpedge.RetryAfter(o.RetryAfter),
		metrics: newMetrics(o.Registerer),

		publicURL:      o.PublicURL,
		maxImportBytes: o.MaxImportBytes,

		protectionCert: o.ProtectionCert,
		protectionKey:  o.ProtectionKey,
		protectionID:   ams.ProtectionKeyID(o.ProtectionCert),
	}
	if s.maxImportBytes <= 0 {
		s.maxImportBytes = 64 << 20
	}

	e := echo.New()
	e.HideBanner, e.HidePort, e.Debug = true, true, false
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = echo.ExtractIPDirect()

	// Before routing: /API/ (the AMS documentation's spelling) is /api/.
	e.Pre(upperAPIPrefix)
	// Order: recover, request ID, metrics and log, no-store, then routes.
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, LogErrorFunc: s.logPanic}))
	e.Use(requestID)
	e.Use(s.observe)
	e.Use(noStore)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if o.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(o.Metrics))
	}

	// Everything under /api/ needs a credential, unknown paths included,
	// so an anonymous caller learns nothing about the API.
	api := e.Group("/api", rejectQueryCredential, s.authenticate)
	api.POST("/keys", s.createKey, s.allow(opKeysCreate))
	api.GET("/keys", s.listKeys, s.allow(opKeysList))
	api.POST("/keys/import", s.importKeys, s.allow(opKeysImport))
	api.POST("/Import/ContentKeys", s.importKeys, s.allow(opKeysImport))
	api.POST("/keys/export", s.exportKeys, s.allow(opKeysExport))
	api.GET("/keys/:kid", s.getKey, s.allow(opKeysGet))
	api.DELETE("/keys/:kid", s.deleteKey)
	api.POST("/keys/:kid/restore", s.restoreKey, s.allow(opKeysRestore))
	api.GET("/keys/:kid/delivery-url", s.deliveryURL, s.allow(opKeysDeliveryURL))
	api.GET("/assets/:asset/keys", s.listAssetKeys, s.allow(opAssetKeysList))
	api.GET("/token-certificates", s.tokenCertificates, s.allow(opCertificatesList))
	api.GET("/openapi.json", s.openAPIDoc, s.allow(opOpenAPI))
	api.POST("/keyseeds", s.createKeySeed, s.allow(opKeySeedsCreate))
	api.GET("/keyseeds", s.listKeySeeds, s.allow(opKeySeedsList))
	api.GET("/keyseeds/:id", s.getKeySeed, s.allow(opKeySeedsGet))

	// Azure Media Services v2 compatibility (ams.go). OData key segments
	// such as ContentKeys('nb:kid:UUID:...') arrive raw or percent-encoded
	// and are parsed by the handlers, not by the router; a segment of one
	// path element that is not theirs is answered as an unknown route.
	api.POST("/ContentKeys", s.amsCreate, s.allow(opAMSCreate))
	api.GET("/ContentKeys", s.amsList, s.allow(opAMSList))
	api.GET("/GetProtectionKeyId", s.amsProtectionKeyID, s.allow(opAMSProtectionKeyID))
	api.GET("/GetProtectionKey", s.amsProtectionKey, s.allow(opAMSProtectionKey))
	api.GET("/:contentKeySegment", s.amsContentKeyRoute(opAMSGet, s.amsGet))
	api.DELETE("/:contentKeySegment", s.amsContentKeyRoute(opAMSDelete, s.amsDelete))
	api.POST("/:contentKeySegment/GetKeyDeliveryUrl", s.amsContentKeyRoute(opAMSDeliveryURL, s.amsDeliveryURL))
	api.GET("/:assetSegment/ContentKeys", s.amsAssetRoute(s.amsAssetList))

	s.router = e
	s.staticAPI = map[string]bool{}
	for _, r := range e.Routes() {
		if rest, ok := strings.CutPrefix(r.Path, "/api/"); ok && !strings.ContainsAny(rest, "/:*") {
			s.staticAPI[rest] = true
		}
	}
	return &Handler{e: e}, nil
}

func noStore(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header()["Cache-Control"] = noStoreValue
		return next(c)
	}
}

var noStoreValue = []string{"no-store"}
