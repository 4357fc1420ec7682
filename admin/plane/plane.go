package plane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/admin/audit"
	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/internal/ratelimit"
)

// Check is one readiness check run by GET /readyz. Its error text is shown
// to anyone who can reach the admin listener, so it must hold no secret.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
	// Detail, when set, is shown under "details" in /readyz even when the
	// check passes ("" shows nothing): a degraded state that does not make
	// the instance unready, such as a trust source serving its last good
	// keys. It must hold no secret either.
	Detail func() string
}

// CheckTimeout bounds each readiness check.
const CheckTimeout = time.Second

// Options configures the plane. Log and Registerer are required; so are Keys
// and Audit when Credentials is set.
type Options struct {
	// Log receives request failures and the /api/ access log.
	Log *slog.Logger
	// Registerer receives the admin plane's metrics: the shared HTTP
	// request metrics labelled plane="admin",
	// keydelivery_admin_operations_total{operation,result} and
	// keydelivery_audit_write_failures_total.
	Registerer prometheus.Registerer
	// Metrics is served at GET /metrics without credentials (default: no
	// /metrics route).
	Metrics http.Handler
	// Checks are run by GET /readyz, in parallel, each with CheckTimeout.
	Checks []Check
	// Keys is the key store, reached by operations through their Call.
	Keys Keys
	// Credentials are the admin credentials. Default nil: every /api/
	// request is refused with 401.
	Credentials *credentials.Set
	// Audit receives the records of every operation.
	Audit *audit.Log
	// RetryAfter is the Retry-After sent with 503 (default 1s).
	RetryAfter time.Duration
	// AuthFailures is the budget of failed admin authentications (a
	// missing or wrong credential under /api/) per client address: an
	// address over it is answered 429 rate_limited, with Retry-After,
	// before its credential is looked at. Zero: no limit. Failed
	// authentications are audited (operation "authenticate", result
	// unauthorized) at most once a second per address, each record
	// counting the failures since the address's previous one, and at most
	// 10 records a second in all; every one is counted in
	// keydelivery_admin_operations_total{operation="authenticate"}.
	AuthFailures ratelimit.Limit
	// RateLimitClients is how many client addresses the budget remembers
	// (default ratelimit.DefaultSize).
	RateLimitClients int
	// Now is the clock of the budget (default time.Now).
	Now func() time.Time
	// ClientAddr is the address of the client that sent a request (behind
	// trusted proxies, the one they forwarded), for the access log and the
	// audit log's source. Default: the TCP peer's address.
	ClientAddr func(*http.Request) string
	// AuthenticatedTimeout, when positive, is how long a request under
	// /api/ may take to arrive and be answered once its credential is
	// valid: the read and write deadlines move that far from the moment the
	// credential matched. Before that, the server's own timeouts (short, the
	// delivery plane's) bound it, so a client without a credential cannot
	// hold a connection open by sending its body slowly. Default: the
	// server's timeouts throughout.
	AuthenticatedTimeout time.Duration
}

// Plane is the admin listener's http.Handler, on which the admin APIs
// register their operations.
type Plane struct {
	e       *echo.Echo
	log     *slog.Logger
	keys    Keys
	creds   *credentials.Set
	audit   *audit.Log
	checks  []Check
	retry   string
	metrics *planeMetrics
	// authTimeout is Options.AuthenticatedTimeout.
	authTimeout time.Duration

	// failures is the budget of failed authentications (nil: none);
	// failureAudit paces their audit records.
	failures     *ratelimit.Table
	failureAudit *ratelimit.Tally

	// rewrites run before routing, in order (see Rewrite).
	rewrites []func(*url.URL)
	// protected are the path prefixes that need a credential besides
	// /api/ (see Protect).
	protected []protectedPrefix
	// errorBodies may answer a refusal in an API's own shape (see
	// ErrorBody), in order; the first that takes it wins.
	errorBodies []ErrorBodyFunc
	// ops are the registered operations, by name.
	ops map[string]Operation
}

// New builds the plane with its probes; the APIs are registered on it.
func New(o Options) (*Plane, error) {
	if o.Log == nil || o.Registerer == nil {
		return nil, errors.New("plane: Log and Registerer are required")
	}
	if o.Credentials != nil && (o.Keys == nil || o.Audit == nil) {
		return nil, errors.New("plane: Keys and Audit are required when Credentials are set")
	}
	seen := map[string]bool{}
	for _, c := range o.Checks {
		if c.Name == "" || c.Check == nil {
			return nil, errors.New("plane: a readiness check needs a name and a function")
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("plane: readiness check %q appears twice", c.Name)
		}
		seen[c.Name] = true
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Plane{
		log:     o.Log,
		keys:    o.Keys,
		creds:   o.Credentials,
		audit:   o.Audit,
		checks:  o.Checks,
		retry:   httpedge.RetryAfter(o.RetryAfter),
		metrics: newMetrics(o.Registerer),
		ops:     map[string]Operation{},

		authTimeout: o.AuthenticatedTimeout,
	}
	var err error
	if !o.AuthFailures.Off() {
		if p.failures, err = ratelimit.NewTable(o.AuthFailures, o.RateLimitClients, o.Now); err != nil {
			return nil, fmt.Errorf("plane: auth failure budget: %w", err)
		}
	}
	if p.failureAudit, err = ratelimit.NewTally(time.Second, failureAuditRate, o.RateLimitClients, o.Now); err != nil {
		return nil, fmt.Errorf("plane: %w", err)
	}
	e := echo.New()
	e.HideBanner, e.HidePort, e.Debug = true, true, false
	e.HTTPErrorHandler = p.handleError
	e.IPExtractor = echo.ExtractIPDirect()
	if o.ClientAddr != nil {
		e.IPExtractor = o.ClientAddr
	}
	// Order: recover, request ID, metrics and log, no-store, the /api/
	// credential check, then the route (an operation wrapped by serve).
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, LogErrorFunc: p.logPanic}))
	e.Use(requestID)
	e.Use(p.observe)
	e.Use(noStore)
	e.Use(p.guardAPI)
	e.GET("/healthz", p.healthz)
	e.GET("/readyz", p.readyz)
	if o.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(o.Metrics))
	}
	p.e = e
	return p, nil
}

// ServeHTTP implements http.Handler: the rewrites, then the routes. The
// access log shows the URL as the client sent it.
func (p *Plane) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(p.rewrites) > 0 {
		orig := *r.URL
		for _, f := range p.rewrites {
			f(r.URL)
		}
		if r.URL.Path != orig.Path || r.URL.RawPath != orig.RawPath {
			r = r.WithContext(context.WithValue(r.Context(), origURLKey{}, &orig))
		}
	}
	p.e.ServeHTTP(w, r)
}

type origURLKey struct{}

// clientURL is the URL of r as the client sent it, before any rewrite.
func clientURL(r *http.Request) *url.URL {
	if u, ok := r.Context().Value(origURLKey{}).(*url.URL); ok {
		return u
	}
	return r.URL
}

// Rewrite adds a pre-router: f may change the request's path before the
// routes see it, so that an API can turn its own URL spellings (the AMS
// OData key segments, /API/) into ordinary route parameters. f must set
// RawPath whenever a path segment needs escaping. Call Rewrite before
// serving.
func (p *Plane) Rewrite(f func(u *url.URL)) { p.rewrites = append(p.rewrites, f) }

// ErrorBodyFunc may render a refusal in an API's own error shape instead of
// the problem document: given the request, its URL as the client sent it
// and the problem (status, code, reason, detail), it returns the media
// type and body to answer, or ok false to leave the problem document. The
// status and headers stay the plane's.
type ErrorBodyFunc func(r *http.Request, clientURL *url.URL, p *httpedge.Problem) (contentType string, body []byte, ok bool)

// ErrorBody adds f for every refusal, of any route (the credential check
// included): an API uses it for the requests that ask for its own error
// shape. Call ErrorBody before serving.
func (p *Plane) ErrorBody(f ErrorBodyFunc) { p.errorBodies = append(p.errorBodies, f) }

// Handle routes method and path (an echo route template, under /api/) to
// the operation op, served by h.
func (p *Plane) Handle(method, path string, op Operation, h Handler) {
	p.register(op)
	p.e.Add(method, path, p.serve(func(*Call) (Operation, Handler) { return op, h }))
}

// HandleSelect routes method and path to the operation that sel chooses from
// the request, for a route that is one of several operations (DELETE
// /api/keys/{kid} is a soft delete, or a purge with ?purge=true). Every
// operation sel may choose is listed in ops.
func (p *Plane) HandleSelect(method, path string, sel func(*Call) (Operation, Handler), ops ...Operation) {
	for _, op := range ops {
		p.register(op)
	}
	p.e.Add(method, path, p.serve(sel))
}

func (p *Plane) register(op Operation) {
	if op.Name == "" || op.Perm == 0 {
		panic("plane: an operation needs a name and a permission")
	}
	if prev, ok := p.ops[op.Name]; ok && prev != op {
		panic("plane: operation " + op.Name + " registered twice with different rules")
	}
	p.ops[op.Name] = op
	p.metrics.known(op.Name)
}

// Route is one registered route.
type Route struct {
	Method, Path string
}

// Routes lists the routes of the plane (probes included), sorted.
func (p *Plane) Routes() []Route {
	var out []Route
	for _, r := range p.e.Routes() {
		out = append(out, Route{Method: r.Method, Path: r.Path})
	}
	slices.SortFunc(out, func(a, b Route) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Method, b.Method)
	})
	return out
}

// Operations lists the registered operations, sorted by name.
func (p *Plane) Operations() []Operation {
	out := make([]Operation, 0, len(p.ops))
	for _, op := range p.ops {
		out = append(out, op)
	}
	slices.SortFunc(out, func(a, b Operation) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func noStore(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		httpedge.SetNoStore(c.Response().Header())
		return next(c)
	}
}

// isAPI reports whether path is under /api/, where every request needs a
// credential.
func isAPI(path string) bool { return path == "/api" || strings.HasPrefix(path, "/api/") }

// protectedPrefix is a path prefix behind the credential check (Protect).
type protectedPrefix struct {
	prefix string // ends with '/'
	text   bool   // refusals answered in plain text
}

// Protect puts every path under prefix (which must start and end with '/',
// such as "/speke/") behind the admin credential check, exactly as /api/
// is: the same credentials, the same refusals, routed or not. With
// textErrors, every refusal under prefix is answered in plain text (the
// problem's detail as text/plain, status and headers unchanged), for a
// protocol that defines its error bodies as text, such as SPEKE. Call it
// before serving, from an API's Register.
func (p *Plane) Protect(prefix string, textErrors bool) {
	if len(prefix) < 2 || prefix[0] != '/' || prefix[len(prefix)-1] != '/' || prefix == "/api/" {
		panic("plane: Protect needs a prefix such as /speke/")
	}
	p.protected = append(p.protected, protectedPrefix{prefix: prefix, text: textErrors})
}

// guarded reports whether path needs a credential: it is under /api/ or a
// prefix an API protected; text says whether its refusals are plain text.
func (p *Plane) guarded(path string) (guarded, text bool) {
	if isAPI(path) {
		return true, false
	}
	for _, pp := range p.protected {
		if path+"/" == pp.prefix || strings.HasPrefix(path, pp.prefix) {
			return true, pp.text
		}
	}
	return false, false
}
