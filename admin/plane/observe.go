package plane

import (
	"log/slog"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/admin/audit"
	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/metrics"
)

type planeMetrics struct {
	http          *metrics.HTTP
	operations    *prometheus.CounterVec
	auditFailures prometheus.Counter
	limited       prometheus.Counter
	warnings      *prometheus.CounterVec
	mu            sync.Mutex
	seen          map[string]bool
}

func newMetrics(reg prometheus.Registerer) *planeMetrics {
	m := &planeMetrics{
		http: metrics.NewHTTP(prometheus.WrapRegistererWith(prometheus.Labels{"plane": "admin"}, reg)),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "admin", Name: "operations_total",
			Help: "Admin operations by operation and result (ok, conflict, not_found, invalid, forbidden, unauthorized, unavailable, error).",
		}, []string{"operation", "result"}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "audit", Name: "write_failures_total",
			Help: "Audit records that could not be written (the admin writes they were for were refused).",
		}),
		seen: map[string]bool{},
	}
	limited := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Name: "rate_limited_total",
		Help: "Requests refused with 429 rate_limited, by plane and by the budget spent (auth_failures, requests, admin_auth_failures).",
	}, []string{"limit"})
	m.limited = limited.WithLabelValues("admin_auth_failures")
	m.warnings = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Subsystem: "admin", Name: "warnings_total",
		Help: "Things admin operations did as asked but that deserve attention, by operation and warning (weak_key: keys of one repeated byte imported).",
	}, []string{"operation", "warning"})
	m.warnings.WithLabelValues("keys.import", "weak_key")
	reg.MustRegister(m.operations, m.auditFailures, m.warnings)
	prometheus.WrapRegistererWith(prometheus.Labels{"plane": "admin"}, reg).MustRegister(limited)
	m.operations.WithLabelValues(opAuthenticate, string(audit.Unauthorized))
	return m
}

// known makes the ok series of an operation exist from the start, so rates
// work at once.
func (m *planeMetrics) known(op string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.seen[op] {
		m.seen[op] = true
		m.operations.WithLabelValues(op, string(audit.OK))
	}
}

func (m *planeMetrics) operation(name string, result audit.Result) {
	m.operations.WithLabelValues(name, string(result)).Inc()
}

func setOutcome(c echo.Context, reason string, err error) {
	c.Set(outcomeKey, httpedge.Outcome{Reason: reason, Err: err})
}

// observe records RED metrics by route template and logs every /api/
// request (admin actions are rare and worth a line each) and every 5xx.
func (p *Plane) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		d := time.Since(start)
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		status := c.Response().Status
		p.metrics.http.Observe(route, status, d)
		if g, _ := p.guarded(c.Request().URL.Path); g || status >= 500 {
			p.logRequest(c, route, status, d)
		}
		return nil
	}
}

func (p *Plane) logRequest(c echo.Context, route string, status int, d time.Duration) {
	r := c.Request()
	req := httpedge.Request{ID: c.Response().Header().Get(echo.HeaderXRequestID), Method: r.Method, Route: route,
		URL: clientURL(r), Status: status, Duration: d, Remote: c.RealIP()}
	var extra []slog.Attr
	if cr, ok := c.Get(credentialKey).(credentials.Credential); ok {
		extra = append(extra, slog.String("credential", cr.Name))
	}
	if op, ok := c.Get(operationKey).(Operation); ok {
		extra = append(extra, slog.String("operation", op.Name))
	}
	if o, ok := c.Get(outcomeKey).(httpedge.Outcome); ok {
		req.Reason, req.Err = o.Reason, o.Err
	}
	httpedge.Log(r.Context(), p.log, "admin request", req, extra...)
}

func (p *Plane) logPanic(c echo.Context, err error, stack []byte) error {
	p.log.Error("panic serving admin request", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", err, "stack", string(stack))
	return err
}

// requestID sets X-Request-ID: the caller's, when it is a short plain token
// (so a client such as kdctl can correlate), or a new random one.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderXRequestID, httpedge.RequestID(c.Request().Header.Get(echo.HeaderXRequestID)))
		return next(c)
	}
}
