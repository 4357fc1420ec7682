package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/internal/ratelimit"
	"github.com/keydelivery/keydelivery/keystore"
)

// keySource is what delivery needs from the key store.
type keySource interface {
	Get(ctx context.Context, id keystore.KeyID) (keystore.Key, error)
}

// verifier is what delivery needs from package auth.
type verifier interface {
	Verify(raw string) (auth.Claims, error)
}

// useCounter is what delivery needs to keep a token's replay limit
// (keystore.Keys.CountUse).
type useCounter interface {
	CountUse(ctx context.Context, digest [32]byte, expires time.Time) (int64, error)
}

// Options configures the delivery plane. Log, Verifier, Keys and Registerer
// are required.
type Options struct {
	Log        *slog.Logger
	Verifier   verifier
	Keys       keySource
	Registerer prometheus.Registerer
	// CORSOrigins lists the origins browser players may call from: exact
	// origins ("https://player.example.com"), host patterns
	// ("https://*.example.com"), or "*" for any origin. Empty: no CORS.
	CORSOrigins []string
	// Serving reports whether the server is taking traffic; /healthz
	// answers 503 once it returns false (draining). Default: always true.
	Serving func() bool
	// RetryAfter is the Retry-After sent with 503 (default 1s).
	RetryAfter time.Duration
	// BodyLimit caps request bodies (default 64 KiB).
	BodyLimit int64
	// AccessLog logs one line per request at Info (default off).
	AccessLog bool
	// LicenseIssuers issues the licenses of PlayReady, Widevine and
	// FairPlay. A system without an entry gets StubIssuer.
	LicenseIssuers map[System]LicenseIssuer
	// LicenseTimeout bounds the key lookups and the issuer of one license
	// request (default 10s).
	LicenseTimeout time.Duration
	// MaxLicenseKIDs caps the key IDs of one license request (default 32).
	MaxLicenseKIDs int
	// PersistentLicenses lets ClearKey answer "persistent-license" session
	// requests (default: refused, 403 persistent_license_disabled).
	PersistentLicenses bool

	// Uses keeps the replay limit of tokens that carry one (the maxuses
	// claim), across every server on the store. Default nil: such tokens
	// are refused with 503 (fail closed). Tokens without the claim never
	// touch it.
	Uses useCounter
	// AuthFailures is the budget of failed token verifications per client
	// address (ratelimit.AddressKey of the address echo's RealIP gives):
	// an address over it is answered 429 rate_limited, with Retry-After,
	// before its token is looked at. Zero: no limit.
	AuthFailures ratelimit.Limit
	// Requests is the budget of requests per client address, any request
	// (429 rate_limited when spent). Zero: no limit.
	Requests ratelimit.Limit
	// RateLimitClients is how many client addresses each budget remembers
	// (default ratelimit.DefaultSize); memory stays bounded whatever the
	// number of addresses.
	RateLimitClients int
	// Now is the clock of the budgets and of the refusal log (default
	// time.Now).
	Now func() time.Time
	// ClientAddr is the address of the client that sent a request (behind
	// trusted proxies, the one they forwarded), for the access log.
	// Default: the TCP peer's address.
	ClientAddr func(*http.Request) string
}

var amsName = map[System]string{PlayReady: "PlayReady", Widevine: "Widevine", FairPlay: "FairPlay"}

// Handler is the delivery plane's http.Handler.
type Handler struct {
	e *echo.Echo
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.e.ServeHTTP(w, r) }

// New builds the delivery plane.
func New(o Options) (*Handler, error) {
	if o.Log == nil || o.Verifier == nil || o.Keys == nil || o.Registerer == nil {
		return nil, errors.New("delivery: Log, Verifier, Keys and Registerer are required")
	}
	allow, err := newOriginMatcher(o.CORSOrigins)
	if err != nil {
		return nil, err
	}
	if o.Serving == nil {
		o.Serving = func() bool { return true }
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	if o.BodyLimit <= 0 {
		o.BodyLimit = 64 << 10
	}
	if o.LicenseTimeout <= 0 {
		o.LicenseTimeout = defaultIssueTimeout
	}
	if o.MaxLicenseKIDs <= 0 {
		o.MaxLicenseKIDs = 32
	}
	issuers := map[System]LicenseIssuer{}
	for _, sys := range Systems() {
		issuers[sys] = StubIssuer{}
	}
	for sys, is := range o.LicenseIssuers {
		if _, ok := issuers[sys]; !ok {
			return nil, fmt.Errorf("delivery: no license endpoint for system %q (known: playready, widevine, fairplay)", sys)
		}
		if is != nil {
			issuers[sys] = is
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &server{
		log:     o.Log,
		verify:  o.Verifier,
		keys:    o.Keys,
		uses:    o.Uses,
		serving: o.Serving,
		metrics: newMetrics(o.Registerer),
		retry:   httpedge.RetryAfter(o.RetryAfter),

		issuers:      issuers,
		issueTimeout: o.LicenseTimeout,
		maxKIDs:      o.MaxLicenseKIDs,
		persistent:   o.PersistentLicenses,
	}
	if err := s.limits(o); err != nil {
		return nil, err
	}

	e := echo.New()
	e.HideBanner, e.HidePort, e.Debug = true, true, false
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = echo.ExtractIPDirect()
	if o.ClientAddr != nil {
		e.IPExtractor = o.ClientAddr
	}

	// Order: the edge (request ID, no-store, recover, RED metrics, access
	// log), then CORS (so errors carry CORS headers too), then routes. The
	// body limit applies to the routes that take a body.
	e.Use(s.edge(o.AccessLog))
	if allow != nil {
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOriginFunc:  func(origin string) (bool, error) { return allow(origin), nil },
			AllowMethods:     []string{http.MethodGet, http.MethodPost, http.MethodOptions},
			AllowHeaders:     []string{echo.HeaderAuthorization, echo.HeaderContentType},
			AllowCredentials: true,
			ExposeHeaders:    []string{echo.HeaderXRequestID, "Retry-After", "WWW-Authenticate", StubHeader},
			MaxAge:           600,
		}))
	}

	e.GET("/healthz", s.healthz)
	e.GET("/keys/:kid", s.keyByPath)
	e.GET("/", s.keyByQuery)
	limit := bodyLimit(o.BodyLimit)
	e.POST("/", s.keyByQuery, limit)
	e.POST("/clearkey/license", s.clearKey, limit)
	// The license endpoints, and the Azure Media Services forms
	// (/PlayReady/, /Widevine/?kid=, /FairPlay/?kid=).
	for _, sys := range Systems() {
		h := s.license(sys)
		e.POST("/"+string(sys)+"/license", h, limit)
		ams := "/" + amsName[sys]
		e.POST(ams, h, limit)
		e.POST(ams+"/", h, limit)
	}
	return &Handler{e: e}, nil
}
